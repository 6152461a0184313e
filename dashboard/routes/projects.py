"""Projects (Prefect UI's team settings page on Server): list, create, delete with a confirmation; and the
Flows of a project (the project dashboard's Flows tab): labels, schedule with its time zone and an on/off
toggle, the last ten runs as bars, and Quick Run on every row."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from dashboard.errors import NotFound
from dashboard.routes import gql, tenant_id
from dashboard.routes.flows import flow_labels, flow_schedule

bp = Blueprint("projects", __name__)

BARS = 10


@bp.get("/projects")
def projects():
    data = gql("""query Projects { project(order_by: {name: asc}) { id name description created
                   flows(where: {archived: {_eq: false}}) { id } } }""")
    return render_template("projects.html", projects=data["project"])


@bp.post("/projects")
def create_project():
    name = request.form.get("name", "").strip()
    if not name:
        flash("A project needs a name.", "error")
        return redirect(url_for("projects.projects"))
    gql("""mutation CreateProject($input: create_project_input!) { create_project(input: $input) { id } }""",
        {"input": {"tenant_id": tenant_id(), "name": name,
                   "description": request.form.get("description", "").strip() or None}})
    flash(f"Project {name} created.", "success")
    return redirect(url_for("projects.projects"))


def _project(project_id: str) -> dict:
    data = gql("""query Project($id: uuid!) { project_by_pk(id: $id) { id name description
                   flows(where: {archived: {_eq: false}}) { id } } }""", {"id": project_id})
    if not data["project_by_pk"]:
        raise NotFound("project", project_id)
    return data["project_by_pk"]


@bp.get("/project/<uuid:project_id>/delete")
def confirm_delete(project_id):
    return render_template("project_delete.html", project=_project(str(project_id)))


@bp.post("/project/<uuid:project_id>/delete")
def delete_project(project_id):
    project = _project(str(project_id))
    if request.form.get("confirm") != project["name"]:
        flash("Type the project's name to confirm its deletion.", "error")
        return redirect(url_for("projects.confirm_delete", project_id=project_id))
    data = gql("""mutation DeleteProject($input: delete_project_input!) { delete_project(input: $input) { success } }""",
               {"input": {"project_id": str(project_id)}})
    if not data["delete_project"]["success"]:
        abort(409, description=f"The API did not delete project {project['name']}.")
    flash(f"Project {project['name']} deleted.", "success")
    return redirect(url_for("projects.projects"))


@bp.get("/project/<uuid:project_id>")
def flows(project_id):
    data = gql("""query ProjectFlows($id: uuid!) {
      project_by_pk(id: $id) { id name description
        flows(where: {archived: {_eq: false}}, order_by: {name: asc}) {
          id name version flow_group_id is_schedule_active schedule run_config
          flow_group { id labels schedule } } } }""", {"id": str(project_id)})
    project = data["project_by_pk"]
    if not project:
        raise NotFound("project", str(project_id))
    rows = project["flows"]
    bars = {}
    if rows:
        params = ", ".join(f"$g{i}: uuid" for i in range(len(rows)))
        fields = "\n".join(
            f"g{i}: flow_run(where: {{flow: {{flow_group_id: {{_eq: $g{i}}}}}}}, "
            f"order_by: {{scheduled_start_time: desc}}, limit: {BARS}) {{ id name state scheduled_start_time }}"
            for i in range(len(rows)))
        runs = gql(f"query LastRuns({params}) {{ {fields} }}",
                   {f"g{i}": row["flow_group_id"] for i, row in enumerate(rows)})
        bars = {row["id"]: list(reversed(runs[f"g{i}"])) for i, row in enumerate(rows)}
    flows = [dict(row, labels=flow_labels(row), schedule_shown=flow_schedule(row), bars=bars.get(row["id"], []))
             for row in rows]
    return render_template("project.html", project=project, flows=flows)
