"""Agents (Prefect UI's /agent page): name, labels, last poll, runs held now, and removal of the agents that
stopped polling (stale by the rule `python -m agents trigger --wait` warns with)."""
from __future__ import annotations

import pendulum
from flask import Blueprint, flash, redirect, render_template, url_for

from dashboard.agent_rules import AGENT_FRESH_SECONDS, is_stale
from dashboard.routes import gql

bp = Blueprint("agents", __name__)

HELD_STATES = ["Submitted", "Running", "Cancelling"]


def _agents() -> list:
    data = gql("""query Agents($held: [String!]) {
        agent(order_by: {name: asc}) { id name type labels last_queried core_version }
        flow_run(where: {state: {_in: $held}, agent_id: {_is_null: false}}) { agent_id } }""",
               {"held": HELD_STATES})
    held: dict = {}
    for row in data["flow_run"]:
        held[row["agent_id"]] = held.get(row["agent_id"], 0) + 1
    now = pendulum.now("utc")
    return [dict(a, stale=is_stale(a["last_queried"], now), held=held.get(a["id"], 0)) for a in data["agent"]]


@bp.get("/agent")
def agents():
    return render_template("agents.html", agents=_agents(), fresh_seconds=AGENT_FRESH_SECONDS)


def _delete(agent_id: str) -> bool:
    data = gql("mutation DeleteAgent($input: delete_agent_input!) { delete_agent(input: $input) { success } }",
               {"input": {"agent_id": agent_id}})
    return bool(data["delete_agent"]["success"])


@bp.post("/agent/<uuid:agent_id>/delete")
def delete(agent_id):
    stale = {a["id"]: a for a in _agents() if a["stale"]}
    if str(agent_id) not in stale:
        flash("Only agents that stopped polling can be removed (a live agent would register again).", "error")
    elif _delete(str(agent_id)):
        flash(f"Agent {stale[str(agent_id)]['name']} removed.", "success")
    return redirect(url_for("agents.agents"))


@bp.post("/agent/clean-up")
def clean_up():
    removed = sum(_delete(a["id"]) for a in _agents() if a["stale"])
    flash(f"Removed {removed} stale agent(s).", "success")
    return redirect(url_for("agents.agents"))
