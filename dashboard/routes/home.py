"""The Dashboard (Prefect UI's Overview tab): runs by state over the last 24 hours, runs in progress,
recent failures, upcoming and late runs (flagged when no live agent covers their labels), and the agents."""
from __future__ import annotations

from typing import Dict, List, Tuple

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


QUERY = f"""
query Dashboard($late: timestamptz, $limit: Int) {{
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
# The Summary reads the newest runs page by page (an ordered read with no filter, which the API answers off
# its time index) and stops at the first run older than 24 hours, or at SUMMARY_CAP runs: the page costs the
# same at any number of stored runs, and says "at least" when it stopped at the cap.
SUMMARY_PAGE = 500
SUMMARY_CAP = 500
SUMMARY_QUERY = """query Summary($limit: Int, $offset: Int) {
  flow_run(order_by: {scheduled_start_time: desc}, limit: $limit, offset: $offset) { state scheduled_start_time } }"""


def summary(now: pendulum.DateTime) -> Tuple[List[Tuple[str, int]], bool]:
    """Runs by state scheduled in the last 24 hours (up to now), and whether SUMMARY_CAP cut the count."""
    since = now.subtract(hours=24)
    counts: Dict[str, int] = {state: 0 for state in SUMMARY_STATES}
    read = 0
    while read < SUMMARY_CAP:
        rows = gql(SUMMARY_QUERY, {"limit": SUMMARY_PAGE, "offset": read})["flow_run"]
        read += len(rows)
        for row in rows:
            start = pendulum.parse(row["scheduled_start_time"]) if row["scheduled_start_time"] else None
            if start is not None and start < since:
                return list(counts.items()), False
            if start is not None and start <= now and row["state"] in counts:
                counts[row["state"]] += 1
        if len(rows) < SUMMARY_PAGE:
            return list(counts.items()), False
    return list(counts.items()), True


@bp.get("/")
def dashboard():
    now = pendulum.now("utc")
    data = gql(QUERY, {"late": now.subtract(seconds=LATE_AFTER_SECONDS).isoformat(), "limit": LIST_LIMIT})
    counts, capped = summary(now)
    upcoming = []
    for run in data["upcoming"]:
        late = pendulum.parse(run["scheduled_start_time"]) < now.subtract(seconds=LATE_AFTER_SECONDS)
        upcoming.append(dict(run, late=late, mismatch=missing_labels(run["labels"] or [], data["agent"])))
    agents = [dict(a, stale=is_stale(a["last_queried"], now)) for a in data["agent"]]
    return render_template("dashboard.html", summary=counts, capped=capped, cap=SUMMARY_CAP, in_progress=data["in_progress"],
                           failures=data["failures"], upcoming=upcoming,
                           late_count=data["late"]["aggregate"]["count"], agents=agents,
                           fresh_seconds=AGENT_FRESH_SECONDS)
