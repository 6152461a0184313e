"""The Flow run page (Prefect UI's /flow-run/:id): state and its history, duration, agent, parameters, task
runs (mapped children counted) and the logs, which grow live (static/live.js polls /live once a second)
with a level filter, a text search and a streamed download. Actions: Cancel, Restart (from the failed
task runs, as Prefect UI's Restart dialog does), Mark as, rename."""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Dict, Iterator, List

from flask import (Blueprint, Response, abort, flash, jsonify, redirect, render_template, request,
                   stream_with_context, url_for)

from dashboard.errors import NotFound
from dashboard.formatting import log_time
from dashboard.routes import gql
from dashboard.routes.flows import start_waking

bp = Blueprint("flow_runs", __name__)

FINISHED = ("Success", "Failed", "Cancelled", "TimedOut", "Skipped", "Finished", "Cached", "TriggerFailed")
# Prefect UI's "Mark as" states for a flow run (SetStateDialog on a flow run).
MARK_AS_STATES = ("Failed", "Success", "Cancelled", "Finished", "Scheduled")
# Task run states a restart starts again from (Prefect UI: eligibleTaskRunStates).
RESTART_TASK_STATES = ["Cancelled", "Failed", "TimedOut", "TriggerFailed"]
RESTART_RUN_STATES = ("Failed", "Cancelled")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_PAGE = 500
DOWNLOAD_PAGE = 1000
RESTART_MESSAGE = "restarted this flow run from the dashboard"

RUN_QUERY = """
query FlowRun($id: uuid!) {
  flow_run_by_pk(id: $id) { id name state state_message state_timestamp version parameters labels
    start_time end_time scheduled_start_time created agent_id
    flow { id name version flow_group_id project { id name } }
    states(order_by: {timestamp: asc}) { state message timestamp } }
  task_run(where: {flow_run_id: {_eq: $id}}, order_by: {start_time: asc}) {
    id name map_index state start_time end_time task_id task { id name slug mapped } }
}"""


def load_run(run_id: str) -> Dict[str, Any]:
    """The run, its agent's name and its task runs grouped per task (mapped children counted by state)."""
    data = gql(RUN_QUERY, {"id": run_id})
    run = data["flow_run_by_pk"]
    if not run:
        raise NotFound("flow run", run_id)
    agent = None
    if run.get("agent_id"):
        rows = gql("query Agent($id: uuid!) { agent_by_pk(id: $id) { id name } }", {"id": run["agent_id"]})
        agent = rows["agent_by_pk"]
    tasks: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()
    for tr in data["task_run"]:
        entry = tasks.setdefault(tr["task_id"], {"name": (tr["task"] or {}).get("name") or tr["name"],
                                                 "parent": None, "children": {}, "child_count": 0})
        if tr["map_index"] is not None and tr["map_index"] >= 0:
            entry["child_count"] += 1
            entry["children"][tr["state"]] = entry["children"].get(tr["state"], 0) + 1
        else:
            entry["parent"] = tr
    tasks_list = list(tasks.values())
    can_restart = run["state"] in RESTART_RUN_STATES or any(
        (t["parent"] or {}).get("state") in RESTART_TASK_STATES for t in tasks_list)
    return {"run": run, "agent": agent, "tasks": tasks_list, "finished": run["state"] in FINISHED,
            "can_restart": can_restart}


def _log_where(run_id: str, level: str, search: str) -> Dict[str, Any]:
    where: Dict[str, Any] = {"flow_run_id": {"_eq": run_id}}
    if level in LEVELS:
        where["level"] = {"_in": list(LEVELS[LEVELS.index(level):])}
    if search:
        # ILIKE's own wildcards in the search are matched literally
        where["message"] = {"_ilike": "%" + re.sub(r"([\\%_])", r"\\\1", search) + "%"}
    return where


def _logs(where: Dict[str, Any], offset: int, limit: int, order: str = "created") -> List[dict]:
    order_by = [{"created": "asc"}, {"timestamp": "asc"}] if order == "created" else [{"timestamp": "asc"}]
    data = gql("""query Logs($where: log_bool_exp, $order: [log_order_by!], $limit: Int, $offset: Int) {
                    log(where: $where, order_by: $order, limit: $limit, offset: $offset) {
                      timestamp level name message } }""",
               {"where": where, "order": order_by, "limit": limit, "offset": offset})
    return data["log"]


@bp.get("/flow-run/<uuid:run_id>")
def flow_run(run_id):
    view = load_run(str(run_id))
    return render_template("flow_run.html", mark_as_states=MARK_AS_STATES, levels=LEVELS, **view)


@bp.get("/flow-run/<uuid:run_id>/live")
def live(run_id):
    """What the page's script needs every second: the state, the fragments to redraw, the new log lines.

    Log lines come in the order the API stored them (`created`): a line stored later never lands before the
    offset the script already has, so `offset` is a cursor.
    """
    view = load_run(str(run_id))
    offset = max(0, request.args.get("offset", 0, type=int))
    logs = _logs(_log_where(str(run_id), request.args.get("level", ""), request.args.get("q", "").strip()),
                 offset, LOG_PAGE)
    return jsonify(state=view["run"]["state"], finished=view["finished"], can_restart=view["can_restart"],
                   offset=offset + len(logs),
                   more=len(logs) == LOG_PAGE,
                   logs=[{"timestamp": log_time(log["timestamp"]), "level": log["level"], "name": log["name"],
                          "message": log["message"]} for log in logs],
                   html={"summary": render_template("_run_summary.html", **view),
                         "tasks": render_template("_task_runs.html", **view)})


@bp.get("/flow-run/<uuid:run_id>/logs.txt")
def download_logs(run_id):
    """The run's logs (with the page's filters) as a text file, streamed page by page, never held whole."""
    run = load_run(str(run_id))["run"]
    where = _log_where(str(run_id), request.args.get("level", ""), request.args.get("q", "").strip())

    def lines() -> Iterator[str]:
        offset = 0
        while True:
            page = _logs(where, offset, DOWNLOAD_PAGE, order="timestamp")
            for log in page:
                yield f"{log['timestamp']} {log['level']:<8} {log['name']} | {log['message']}\n"
            if len(page) < DOWNLOAD_PAGE:
                return
            offset += DOWNLOAD_PAGE

    filename = re.sub(r"[^A-Za-z0-9_.-]+", "-", run["name"] or str(run_id)) + ".log"
    return Response(stream_with_context(lines()), mimetype="text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _back(run_id) -> Any:
    return redirect(url_for("flow_runs.flow_run", run_id=run_id))


def _set_run_state(run: dict, state: str, message: str) -> None:
    gql("""mutation SetFlowRunStates($input: set_flow_run_states_input!) {
             set_flow_run_states(input: $input) { states { id status message } } }""",
        {"input": {"states": [{"flow_run_id": run["id"], "version": run["version"],
                               "state": {"type": state, "message": message}}]}})


@bp.post("/flow-run/<uuid:run_id>/cancel")
def cancel(run_id):
    load_run(str(run_id))
    gql("""mutation Cancel($input: cancel_flow_run_input!) { cancel_flow_run(input: $input) { state } }""",
        {"input": {"flow_run_id": str(run_id)}})
    flash("Cancel requested.", "success")
    return _back(run_id)


@bp.post("/flow-run/<uuid:run_id>/mark-as")
def mark_as(run_id):
    state = request.form.get("state", "")
    if state not in MARK_AS_STATES:
        abort(400, description=f"Mark as takes one of {', '.join(MARK_AS_STATES)}, not {state!r}.")
    run = load_run(str(run_id))["run"]
    reason = request.form.get("reason", "").strip()
    _set_run_state(run, state, reason or f"marked {state} from the dashboard")
    if state == "Scheduled":
        start_waking(run["labels"] or [])
    flash(f"Marked as {state}.", "success")
    return _back(run_id)


@bp.post("/flow-run/<uuid:run_id>/restart")
def restart(run_id):
    """Prefect UI's restart: the failed task runs and every task run downstream of them go back to Pending
    (a mapped parent only when it failed itself, so its successful children are kept), then the flow run
    goes to Scheduled and a log line says who restarted it."""
    run = load_run(str(run_id))["run"]
    failed = gql("""query FailedTaskRuns($id: uuid, $states: [String!]) {
                      task_run(where: {flow_run_id: {_eq: $id}, state: {_in: $states}}) { id task_id version } }""",
                 {"id": str(run_id), "states": RESTART_TASK_STATES})["task_run"]
    if not failed and run["state"] not in RESTART_RUN_STATES:
        flash("Nothing to restart: no failed task runs and the run is not Failed or Cancelled.", "error")
        return _back(run_id)
    states = []
    if failed:
        downstream = gql("""query Downstream($id: uuid, $tasks: _uuid) {
            utility_downstream_tasks(args: {start_task_ids: $tasks}) {
              task { task_runs(where: {flow_run_id: {_eq: $id}}) { id map_index version } } } }""",
                         {"id": str(run_id), "tasks": "{" + ",".join(sorted({t["task_id"] for t in failed})) + "}"})
        failed_ids = {t["id"] for t in failed}
        for row in downstream["utility_downstream_tasks"]:
            for tr in (row["task"] or {}).get("task_runs") or []:
                if tr["map_index"] is None or tr["map_index"] < 0 or tr["id"] in failed_ids:
                    states.append({"task_run_id": tr["id"], "version": tr["version"],
                                   "state": {"type": "Pending", "message": RESTART_MESSAGE}})
    if states:
        gql("""mutation SetTaskRunStates($input: set_task_run_states_input!) {
                 set_task_run_states(input: $input) { states { id status } } }""", {"input": {"states": states}})
    gql("""mutation WriteLogs($input: write_run_logs_input!) { write_run_logs(input: $input) { success } }""",
        {"input": {"logs": [{"flow_run_id": str(run_id), "name": "dashboard", "level": "INFO",
                             "message": f"The dashboard {RESTART_MESSAGE}"}]}})
    _set_run_state(run, "Scheduled", RESTART_MESSAGE)
    start_waking(run["labels"] or [])
    flash("Flow run restarted.", "success")
    return _back(run_id)


@bp.post("/flow-run/<uuid:run_id>/rename")
def rename(run_id):
    name = request.form.get("name", "").strip()
    if not name:
        flash("A flow run needs a name.", "error")
        return _back(run_id)
    data = gql("""mutation Rename($input: set_flow_run_name_input!) { set_flow_run_name(input: $input) { success } }""",
               {"input": {"flow_run_id": str(run_id), "name": name}})
    if not data["set_flow_run_name"]["success"]:
        raise NotFound("flow run", str(run_id))
    flash(f"Renamed to {name}.", "success")
    return _back(run_id)
