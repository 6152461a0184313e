"""The Dashboard (Prefect UI's Overview tab): runs by state over the last 24 hours, runs in progress,
recent failures, upcoming and late runs (flagged when no live agent covers their labels), and the agents."""
from __future__ import annotations

import pendulum
from flask import Blueprint, render_template

from dashboard.agent_rules import AGENT_FRESH_SECONDS, is_stale, missing_labels
from dashboard.routes import gql

bp = Blueprint("home", __name__)

# The states the Summary counts, in Prefect UI's order; a run is late 20 s after its start time (the UI's rule).
SUMMARY_STATES = ("Scheduled", "Submitted", "Running", "Success", "Failed", "Cancelled", "TimedOut")
LATE_AFTER_SECONDS = 20
LIST_LIMIT = 10

RUN_FIELDS = "id name state state_timestamp scheduled_start_time start_time end_time labels flow { id name flow_group_id }"


def _query() -> str:
    counts = "\n".join(
        f'  {state.lower()}: flow_run_aggregate(where: {{state: {{_eq: "{state}"}}, '
        f'scheduled_start_time: {{_gte: $since}}}}) {{ aggregate {{ count }} }}'
        for state in SUMMARY_STATES)
    return f"""
query Dashboard($since: timestamptz, $late: timestamptz, $limit: Int) {{
{counts}
  in_progress: flow_run(where: {{state: {{_in: ["Submitted", "Running", "Cancelling"]}}}},
                        order_by: {{scheduled_start_time: desc}}, limit: $limit) {{ {RUN_FIELDS} }}
  failures: flow_run(where: {{state: {{_in: ["Failed", "TimedOut"]}}}},
                     order_by: {{scheduled_start_time: desc}}, limit: $limit) {{ {RUN_FIELDS} }}
  upcoming: flow_run(where: {{state: {{_eq: "Scheduled"}}}}, order_by: {{scheduled_start_time: asc}},
                     limit: $limit) {{ {RUN_FIELDS} }}
  late: flow_run_aggregate(where: {{state: {{_eq: "Scheduled"}}, scheduled_start_time: {{_lt: $late}}}}) {{
    aggregate {{ count }} }}
  agent(order_by: {{last_queried: desc}}) {{ id name labels last_queried }}
}}"""


QUERY = _query()


@bp.get("/")
def dashboard():
    now = pendulum.now("utc")
    data = gql(QUERY, {"since": now.subtract(hours=24).isoformat(),
                       "late": now.subtract(seconds=LATE_AFTER_SECONDS).isoformat(), "limit": LIST_LIMIT})
    summary = [(state, data[state.lower()]["aggregate"]["count"]) for state in SUMMARY_STATES]
    upcoming = []
    for run in data["upcoming"]:
        late = pendulum.parse(run["scheduled_start_time"]) < now.subtract(seconds=LATE_AFTER_SECONDS)
        upcoming.append(dict(run, late=late, mismatch=missing_labels(run["labels"] or [], data["agent"])))
    agents = [dict(a, stale=is_stale(a["last_queried"], now)) for a in data["agent"]]
    return render_template("dashboard.html", summary=summary, in_progress=data["in_progress"],
                           failures=data["failures"], upcoming=upcoming,
                           late_count=data["late"]["aggregate"]["count"], agents=agents,
                           fresh_seconds=AGENT_FRESH_SECONDS)
