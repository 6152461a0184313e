"""The Flow page (Prefect UI's /flow/:id, a flow group): versions, description, parameters with their
defaults, the runs table (state filter, pagination), Quick Run, the schedule toggle, and the Run form
(parameters as JSON checked against the flow's parameters before anything is created)."""
from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional, Tuple

import pendulum
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from dashboard.agent_rules import wake_agents
from dashboard.errors import NotFound
from dashboard.routes import gql

bp = Blueprint("flows", __name__)

PAGE_SIZE = 20
# The state names the runs table filters by (Prefect UI's state filter on Server).
FILTER_STATES = ("Scheduled", "Submitted", "Running", "Success", "Failed", "Cancelled", "TimedOut", "Cancelling")


def flow_labels(flow: dict) -> List[str]:
    """A flow's labels as Server gives them to new runs: the flow group's when set, else its run config's."""
    group = flow.get("flow_group") or {}
    if group.get("labels") is not None:
        return sorted(group["labels"])
    return sorted((flow.get("run_config") or {}).get("labels") or [])


def flow_schedule(flow: dict) -> Optional[dict]:
    """The schedule in force: the flow group's when set, else the version's."""
    group = flow.get("flow_group") or {}
    return group.get("schedule") or flow.get("schedule")


def start_waking(labels: List[str]) -> None:
    """Pokes the agents that may take a run with these labels, in the background: the page does not wait."""
    threading.Thread(target=wake_agents, args=(labels,), name="wake-agents", daemon=True).start()


def create_run(flow_id: str, parameters: Optional[Dict[str, Any]] = None, name: Optional[str] = None,
               labels: Optional[List[str]] = None, scheduled_start_time: Optional[str] = None) -> str:
    """Creates a flow run (Server's create_flow_run) and wakes the agents that may take it.

    Returns:
        The new run's id.
    """
    run_input: Dict[str, Any] = {"flow_id": flow_id}
    for key, value in (("parameters", parameters), ("flow_run_name", name), ("labels", labels),
                       ("scheduled_start_time", scheduled_start_time)):
        if value is not None:
            run_input[key] = value
    data = gql("""mutation CreateFlowRun($input: create_flow_run_input!) {
                    create_flow_run(input: $input) { id } }""", {"input": run_input})
    run_id = data["create_flow_run"]["id"]
    run = gql("query RunLabels($id: uuid!) { flow_run_by_pk(id: $id) { labels } }", {"id": run_id})
    start_waking(list((run["flow_run_by_pk"] or {}).get("labels") or []))
    return run_id


FLOW_GROUP_QUERY = """
query FlowGroup($id: uuid!) {
  flow_group_by_pk(id: $id) { id name description labels schedule default_parameters
    flows(order_by: {version: desc}) { id name version archived created description parameters
      run_config schedule is_schedule_active core_version project { id name } } } }"""


def _flow_group(group_id: str) -> Tuple[dict, dict]:
    """The flow group and its selected version (?version=N, else the newest unarchived one)."""
    group = gql(FLOW_GROUP_QUERY, {"id": group_id})["flow_group_by_pk"]
    if not group or not group["flows"]:
        raise NotFound("flow", group_id)
    wanted = request.args.get("version", type=int)
    versions = group["flows"]
    chosen = next((f for f in versions if f["version"] == wanted), None) if wanted else None
    chosen = chosen or next((f for f in versions if not f["archived"]), versions[0])
    chosen = dict(chosen, flow_group=group)
    return group, chosen


def _flow_by_id(flow_id: str) -> dict:
    data = gql("""query Flow($id: uuid!) { flow_by_pk(id: $id) { id name flow_group_id archived parameters
                   run_config project { id } flow_group { labels } } }""", {"id": flow_id})
    if not data["flow_by_pk"]:
        raise NotFound("flow", flow_id)
    return data["flow_by_pk"]


def _runs(flow_ids: List[str], state: Optional[str], page: int) -> Tuple[List[dict], bool]:
    """A page of the flow group's runs (newest scheduled first) and whether a next page exists.

    The page is asked with one row more than it shows instead of a total count: counting reads every run of
    the flow, a page only the rows up to it.
    """
    where: Dict[str, Any] = {"flow_id": {"_in": flow_ids}}
    if state:
        where["state"] = {"_eq": state}
    data = gql("""query FlowRuns($where: flow_run_bool_exp, $limit: Int, $offset: Int) {
        flow_run(where: $where, order_by: {scheduled_start_time: desc}, limit: $limit, offset: $offset) {
          id name state scheduled_start_time start_time end_time labels flow { version } } }""",
               {"where": where, "limit": PAGE_SIZE + 1, "offset": (page - 1) * PAGE_SIZE})
    rows = data["flow_run"]
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def _render_flow(group: dict, flow: dict, form: Optional[dict] = None, errors: Optional[List[str]] = None,
                 status: int = 200):
    state = request.args.get("state") or None
    if state not in FILTER_STATES:
        state = None
    page = max(1, request.args.get("page", 1, type=int))
    runs, more = _runs([f["id"] for f in group["flows"]], state, page)
    defaults = {p["name"]: p.get("default") for p in flow.get("parameters") or []}
    defaults.update(group.get("default_parameters") or {})
    form = form or {"parameters": json.dumps(defaults, indent=2), "name": "",
                    "labels": ", ".join(flow_labels(flow)), "start": ""}
    return render_template("flow.html", group=group, flow=flow, run_labels=flow_labels(flow),
                           schedule=flow_schedule(flow), runs=runs, more=more, page=page,
                           state_filter=state, filter_states=FILTER_STATES, form=form, errors=errors or [],
                           timezone=current_app.config["DASHBOARD"].timezone), status


@bp.get("/flow/<uuid:group_id>")
def flow(group_id):
    group, chosen = _flow_group(str(group_id))
    return _render_flow(group, chosen)


@bp.post("/flow/<uuid:flow_id>/quick-run")
def quick_run(flow_id):
    flow = _flow_by_id(str(flow_id))
    if flow["archived"]:
        flash("This version is archived: run the newest version instead.", "error")
        return redirect(url_for("flows.flow", group_id=flow["flow_group_id"]))
    return redirect(url_for("flow_runs.flow_run", run_id=create_run(str(flow_id))))


@bp.post("/flow/<uuid:flow_id>/schedule")
def toggle_schedule(flow_id):
    flow = _flow_by_id(str(flow_id))
    turn_on = request.form.get("active") == "on"
    mutation = "set_schedule_active" if turn_on else "set_schedule_inactive"
    data = gql(f"""mutation Schedule($input: {mutation}_input!) {{ {mutation}(input: $input) {{ success }} }}""",
               {"input": {"flow_id": str(flow_id)}})
    if data[mutation]["success"]:
        flash(f"Schedule turned {'on' if turn_on else 'off'}.", "success")
    else:
        flash("The API did not change the schedule.", "error")
    target = request.form.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("flows.flow", group_id=flow["flow_group_id"])
    return redirect(target)


def parse_run_form(form: Dict[str, str], parameters: List[dict], timezone: str
                   ) -> Tuple[Dict[str, Any], List[str]]:
    """Checks the Run form against the flow's parameters.

    Returns:
        (values for create_run, errors); nothing may be created while errors is not empty.
    """
    errors: List[str] = []
    values: Dict[str, Any] = {}
    text = form.get("parameters", "").strip() or "{}"
    try:
        given = json.loads(text)
    except ValueError as exc:
        errors.append(f"Parameters are not valid JSON ({exc}). Write an object such as {{\"name\": \"value\"}}.")
        given = None
    if given is not None and not isinstance(given, dict):
        errors.append("Parameters must be a JSON object ({\"name\": value, ...}), not a "
                      f"{type(given).__name__}.")
        given = None
    if given is not None:
        known = {p["name"] for p in parameters}
        unknown = sorted(set(given) - known)
        if unknown:
            errors.append(f"Unknown parameter(s) {', '.join(unknown)}: this flow takes "
                          f"{', '.join(sorted(known)) or 'no parameters'}.")
        values["parameters"] = given
    if form.get("name", "").strip():
        values["name"] = form["name"].strip()
    values["labels"] = sorted({label.strip() for label in form.get("labels", "").split(",") if label.strip()})
    if form.get("start", "").strip():
        try:
            start = pendulum.parse(form["start"].strip(), tz=timezone)
            values["scheduled_start_time"] = start.in_timezone("utc").isoformat()
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            errors.append(f"Scheduled start {form['start']!r} is not a date and time (YYYY-MM-DDTHH:MM).")
    return values, errors


@bp.post("/flow/<uuid:group_id>/run")
def run(group_id):
    group, chosen = _flow_group(str(group_id))
    form = {key: request.form.get(key, "") for key in ("parameters", "name", "labels", "start")}
    values, errors = parse_run_form(form, chosen.get("parameters") or [],
                                    current_app.config["DASHBOARD"].timezone)
    if errors:
        return _render_flow(group, chosen, form=form, errors=errors, status=400)
    run_id = create_run(chosen["id"], values.get("parameters"), values.get("name"), values["labels"],
                        values.get("scheduled_start_time"))
    return redirect(url_for("flow_runs.flow_run", run_id=run_id))
