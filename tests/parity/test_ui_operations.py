"""The Prefect UI 1.x's operations (PrefectHQ/ui of the core-1.4.1 era: tag 2022-12-15, whose documents for
these pages are those of 2022-10-03), sent as the UI sends them.

Each document in ui_operations/ is written here with the fields and variables the UI's page sends (the UI's
own .gql files are not copied); each test sends it with the variables the page builds and asserts the answer
has what the page reads. Pages: the dashboard, the flow page, Quick Run / the Run tab, the flow run page,
Restart, Mark as, Cancel, the Agents page and Team settings. This is as close as the project gets to
"trigger runs from the UI" without the UI image.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pendulum
import prefect
import pytest
import requests
from graphql import parse, print_ast, validate
from graphql.language import FieldNode, NameNode, OperationDefinitionNode, SelectionSetNode, Visitor, visit

from prefect_emulator.schema import build
from prefect_emulator.server import VALIDATION_RULES
from tests.parity.api import Api, unique
from tests.parity.flows_setup import register, row, rows
from tests.parity.ui_documents import UI_DOCUMENTS

_SCHEMA = build()

OPERATIONS = Path(__file__).parent / "ui_operations"
FAILED_STATES = ["Failed", "TimedOut", "TriggerFailed"]  # what the Restart dialog counts as failed


def send(api: Api, operation: str, **variables: Any) -> Dict[str, Any]:
    """Sends ui_operations/<operation>.gql with the page's variables; returns `data` (errors fail the test)."""
    return api.data((OPERATIONS / f"{operation}.gql").read_text(), variables)


def state(kind: str, message: str = None) -> Dict[str, Any]:
    """A state as the UI builds it: only a type and a message."""
    return {"type": kind, "message": message}


@pytest.fixture
def ui_flow(api: Api, project_id: str) -> Dict[str, str]:
    """A flow a -> b -> c with a parameter, registered like `prefect register` does; its ids."""
    flow = prefect.Flow("ui flow")
    a, b, c = (prefect.Task(n, slug=n) for n in "abc")
    flow.chain(a, b, c)
    flow.add_task(prefect.Parameter("who", default="world"))
    fid = register(api, project_id, flow)
    tasks = {t["slug"]: t["id"] for t in rows(api, "task", {"flow_id": {"_eq": fid}}, "id slug")}
    return dict(tasks, flow_id=fid, flow_group_id=row(api, "flow", fid, "flow_group_id")["flow_group_id"],
                project_id=project_id)


@pytest.fixture
def failed_run(api: Api, ui_flow: Dict[str, str]) -> Dict[str, Any]:
    """A run whose task b failed (c never ran), and which is Failed itself, as a runner leaves it."""
    run_id = send(api, "quick_run", id=ui_flow["flow_id"])["create_flow_run"]["id"]
    send(api, "set_flow_run_states", flowRunId=run_id, version=1, state=state("Running"))
    task_runs = {r["task"]["slug"]: r for r in rows(api, "task_run", {"flow_run_id": {"_eq": run_id}},
                                                       "id version task { slug }")}
    states = [{"task_run_id": task_runs[s]["id"], "version": task_runs[s]["version"], "state": state(kind)}
              for s, kind in (("a", "Success"), ("b", "Failed"))]
    send(api, "set_task_run_states", input=states)
    send(api, "set_flow_run_states", flowRunId=run_id, version=2, state=state("Failed", "b failed"))
    return {"id": run_id, "task_runs": task_runs}


class TestDashboard:
    def test_projects_and_flows(self, api, ui_flow):
        projects = send(api, "dashboard_projects")["project"]
        assert {"id": ui_flow["project_id"], "name": projects and next(
            p["name"] for p in projects if p["id"] == ui_flow["project_id"])} in projects
        search = {"project_id": {"_eq": ui_flow["project_id"]}, "archived": {"_eq": False}}
        flows = send(api, "dashboard_flows", limit=15, offset=0, orderBy=[{"name": "asc"}], searchParams=search)["flow"]
        assert [f["id"] for f in flows] == [ui_flow["flow_id"]]
        flow = flows[0]
        assert flow["flow_group"]["id"] == ui_flow["flow_group_id"] == flow["flow_group_id"]
        assert flow["project"]["id"] == ui_flow["project_id"]
        assert flow["parameters"][0]["name"] == "who" and flow["version"] == 1
        total = send(api, "dashboard_flow_count", searchParams=search)["flowCount"]["aggregate"]["count"]
        assert total == 1

    def test_run_tiles(self, api, ui_flow, failed_run):
        later = pendulum.now("utc").add(hours=1).isoformat()
        upcoming = send(api, "quick_run", id=ui_flow["flow_id"], scheduledStartTime=later)["create_flow_run"]["id"]
        since = pendulum.now("utc").subtract(minutes=5).isoformat()
        count = send(api, "dashboard_flow_runs_count", projectIds=[ui_flow["project_id"]], heartbeat=since)
        assert count["flow_run_aggregate"]["aggregate"]["count"] == 1  # the failed run, not the Scheduled one
        runs = send(api, "dashboard_upcoming_runs", projectId=ui_flow["project_id"])["flow_run"]
        assert [r["id"] for r in runs] == [upcoming]
        assert runs[0]["flow"]["name"] == "ui flow" and runs[0]["state"] == "Scheduled"
        assert send(api, "dashboard_in_progress_runs", projectId=ui_flow["project_id"])["flow_run"] == []


class TestFlowPage:
    def test_flow_group_with_versions(self, api, ui_flow, project_id):
        second = register(api, project_id, prefect.Flow("ui flow"))
        group = send(api, "flow_page", id=ui_flow["flow_group_id"])["flow_group_by_pk"]
        versions = {f["id"]: f for f in group["flows"]}
        assert set(versions) == {ui_flow["flow_id"], second}
        assert versions[ui_flow["flow_id"]]["archived"] is True and versions[second]["version"] == 2
        assert versions[second]["project"]["id"] == project_id
        assert group["settings"]["heartbeat_enabled"] is True and group["default_parameters"] == {}

    def test_runs_table_and_schedule_toggle(self, api, ui_flow, failed_run):
        runs = send(api, "flow_page_runs", flow_group_id=ui_flow["flow_group_id"], name="%", state=FAILED_STATES,
                    limit=10, offset=0, orderBy=[{"scheduled_start_time": "desc"}])["flow_run"]
        assert [r["id"] for r in runs] == [failed_run["id"]]
        assert runs[0]["end_time"] and runs[0]["start_time"]
        # a flow without a schedule: Server answers success false, the UI shows "no schedule"
        assert send(api, "flow_schedule_toggle", id=ui_flow["flow_id"])["set_schedule_active"]["success"] is False


class TestRunTab:
    def test_quick_run_with_everything_the_run_tab_sets(self, api, ui_flow):
        when = pendulum.now("utc").add(minutes=10)
        run_id = send(api, "quick_run", id=ui_flow["flow_id"], flowRunName="from-the-ui", parameters={"who": "ui"},
                      context={"k": "v"}, scheduledStartTime=when.isoformat(),
                      runConfig={"type": "UniversalRun", "labels": ["x"]}, labels=["x"])["create_flow_run"]["id"]
        run = send(api, "flow_run_page", id=run_id)["flow_run_by_pk"]
        assert run["name"] == "from-the-ui" and run["parameters"] == {"who": "ui"} and run["labels"] == ["x"]
        assert run["context"] == {"k": "v"} and run["run_config"]["labels"] == ["x"]
        assert pendulum.parse(run["scheduled_start_time"]) == when
        assert run["state"] == "Scheduled" and run["auto_scheduled"] is False

    def test_quick_run_with_nothing_but_the_flow(self, api, ui_flow):
        run_id = send(api, "quick_run", id=ui_flow["flow_id"])["create_flow_run"]["id"]
        run = send(api, "flow_run_page", id=run_id)["flow_run_by_pk"]
        assert run["flow"]["id"] == ui_flow["flow_id"] and run["name"]
        assert run["states"][0]["state"] == "Scheduled"


class TestFlowRunPage:
    def test_run_with_states_and_task_runs(self, api, ui_flow, failed_run):
        run = send(api, "flow_run_page", id=failed_run["id"])["flow_run_by_pk"]
        assert run["state"] == "Failed" and run["state_message"] == "b failed" and run["version"] == 3
        assert [s["state"] for s in run["states"]] == ["Scheduled", "Running", "Failed"]
        assert run["flow"]["flow_group_id"] == ui_flow["flow_group_id"]
        assert run["flow"]["project"]["id"] == ui_flow["project_id"]
        table = send(api, "flow_run_task_runs", flowRunId=failed_run["id"], name="%b%", state=["Failed"],
                     limit=10, offset=0, orderBy=[{"start_time": "asc"}])["flow_run"][0]["task_runs"]
        assert [(t["task"]["name"], t["state"], t["map_index"]) for t in table] == [("b", "Failed", -1)]


class TestRestart:
    def test_restart_reschedules_the_failed_and_downstream_task_runs(self, api, ui_flow, failed_run):
        failed = send(api, "restart_failed_task_runs", flowRunId=failed_run["id"],
                      failedStates=FAILED_STATES)["task_run"]
        assert [t["task_id"] for t in failed] == [ui_flow["b"]]
        downstream = send(api, "restart_downstream_tasks", flowRunId=failed_run["id"],
                          taskIds="{" + ",".join(t["task_id"] for t in failed) + "}")["utility_downstream_tasks"]
        assert sorted((d["task_id"], d["depth"]) for d in downstream) == sorted([(ui_flow["b"], 0), (ui_flow["c"], 1)])
        to_pending = [{"version": r["version"], "task_run_id": r["id"], "state": state("Pending", "restarted")}
                      for d in downstream for r in d["task"]["task_runs"]]
        assert len(to_pending) == 2
        assert len(send(api, "set_task_run_states", input=to_pending)["set_task_run_states"]["states"]) == 2
        send(api, "write_run_log", flowRunId=failed_run["id"], name="ui", message="someone restarted this flow run")
        answer = send(api, "set_flow_run_states", flowRunId=failed_run["id"], version=3,
                      state=state("Scheduled", "someone restarted this flow run"))
        assert answer["set_flow_run_states"]["states"][0]["status"] == "SUCCESS"
        run = send(api, "flow_run_page", id=failed_run["id"])["flow_run_by_pk"]
        assert run["state"] == "Scheduled"
        states = {t["task"]["slug"]: t["state"] for t in rows(api, "task_run", {"flow_run_id": {"_eq": run["id"]}},
                                                               "state task { slug }")}
        assert {slug: states[slug] for slug in "abc"} == {"a": "Success", "b": "Pending", "c": "Pending"}


class TestMarkAs:
    def test_mark_a_failed_run_as_success(self, api, failed_run):
        # Server has no finished-run guard: "Mark as" sets any state on a finished run
        answer = send(api, "set_flow_run_states", flowRunId=failed_run["id"], version=3,
                      state=state("Success", "marked by someone"))
        assert answer["set_flow_run_states"]["states"][0]["status"] == "SUCCESS"
        assert row(api, "flow_run", failed_run["id"], "state")["state"] == "Success"

    def test_mark_a_scheduled_run_as_running(self, api, ui_flow):
        run_id = send(api, "quick_run", id=ui_flow["flow_id"])["create_flow_run"]["id"]
        send(api, "set_flow_run_states", flowRunId=run_id, version=1, state=state("Running", "marked"))
        run = send(api, "dashboard_in_progress_runs", projectId=ui_flow["project_id"])["flow_run"]
        assert [(r["id"], r["state"]) for r in run] == [(run_id, "Running")]


class TestCancel:
    def test_cancel_a_scheduled_run(self, api, ui_flow):
        run_id = send(api, "quick_run", id=ui_flow["flow_id"])["create_flow_run"]["id"]
        assert send(api, "cancel_flow_run", flowRunId=run_id)["cancel_flow_run"]["state"] == "Cancelled"

    def test_cancel_a_running_run_asks_it_to_cancel(self, api, ui_flow):
        run_id = send(api, "quick_run", id=ui_flow["flow_id"])["create_flow_run"]["id"]
        send(api, "set_flow_run_states", flowRunId=run_id, version=1, state=state("Running"))
        assert send(api, "cancel_flow_run", flowRunId=run_id)["cancel_flow_run"]["state"] == "Cancelling"


class TestAgentsPage:
    def test_restarted_agent_is_one_row_and_can_be_removed(self, api, tenant_id):
        name = unique("agent")
        ids = {api.mutate("register_agent", {"tenant_id": tenant_id, "name": name, "type": "LocalAgent",
                                             "labels": labels})["id"] for labels in (["b", "a"], ["a", "b"])}
        assert len(ids) == 1
        agents = [a for a in send(api, "agents")["agent"] if a["name"] == name]
        assert len(agents) == 1 and agents[0]["labels"] == ["a", "b"] and agents[0]["type"] == "LocalAgent"
        assert send(api, "delete_agent", agentId=agents[0]["id"])["delete_agent"]["success"] is True
        assert not [a for a in send(api, "agents")["agent"] if a["name"] == name]


class TestTeamSettings:
    def test_tenant_list_and_delete(self, api, tenant_id):
        tenants = {t["id"]: t for t in send(api, "team_tenants")["tenant"]}
        assert tenants[tenant_id]["settings"] == {} and tenants[tenant_id]["slug"]
        answer = send(api, "team_delete_tenant", input={"tenant_id": tenant_id, "confirm": True})
        assert answer["delete_tenant"]["success"] is True
        assert tenant_id not in {t["id"] for t in send(api, "team_tenants")["tenant"]}

    def test_settings_form_without_tenant_is_refused_as_on_server(self, api):
        # the UI's form is Cloud's (the tenant comes from the token); Server's input requires tenant_id
        message = api.error((OPERATIONS / "team_update_settings.gql").read_text(), {"settings": {"a": 1}})
        assert "tenant_id" in message


# ------------------------------------------------------------------------------------ the UI's whole corpus
# Every document of the UI is listed in ui_documents.py (the table: path -> Server with the corpus operations
# covering it, or Cloud-only with why). The corpus in ui_operations/corpus/ selects, among them, every field,
# argument, input field and variable type the Server documents use; here each operation must validate as the
# UI sends it (Apollo adds __typename to every selection) and each query must answer on a seeded store.
CORPUS = OPERATIONS / "corpus"
CORPUS_VARIABLES: Dict[str, Dict[str, Any]] = json.loads((CORPUS / "variables.json").read_text())
CORPUS_OPERATIONS = sorted(p.stem for p in CORPUS.glob("*.gql"))
CORPUS_QUERIES = [name for name in CORPUS_OPERATIONS if not name.endswith("_mutation")]
# the figures of the reading (tag 2022-12-15): documents read, of them Server's
DOCUMENTS_READ, SERVER_DOCUMENTS = 288, 192


class _AddTypename(Visitor):
    """What Apollo's addTypename does: `__typename` in every selection set but the operation's own."""

    def leave_selection_set(self, node: SelectionSetNode, _key: Any, parent: Any, *_args: Any) -> Any:
        if isinstance(parent, OperationDefinitionNode) or any(
                isinstance(s, FieldNode) and s.name.value == "__typename" for s in node.selections):
            return None
        typename = FieldNode(name=NameNode(value="__typename"), arguments=(), directives=())
        return SelectionSetNode(selections=(*node.selections, typename))


def as_apollo_sends(name: str) -> str:
    """The corpus operation `name` with the `__typename` fields Apollo adds."""
    return print_ast(visit(parse((CORPUS / f"{name}.gql").read_text()), _AddTypename()))


def test_the_table_lists_every_document_read_and_maps_the_servers_to_the_corpus() -> None:
    assert len(UI_DOCUMENTS) == DOCUMENTS_READ
    server = {path: ops for path, (kind, ops) in UI_DOCUMENTS.items() if kind == "server"}
    assert len(server) == SERVER_DOCUMENTS
    used = {op for ops in server.values() for op in ops}
    assert used == set(CORPUS_OPERATIONS), "every corpus operation covers a UI document, every one exists"
    for path, (kind, why) in UI_DOCUMENTS.items():
        assert kind in ("server", "cloud", "invalid"), path
        assert kind == "server" or (isinstance(why, str) and why), path
    assert set(CORPUS_VARIABLES) == set(CORPUS_OPERATIONS)


@pytest.mark.parametrize("name", CORPUS_OPERATIONS)
def test_each_corpus_operation_validates_with_apollos_typenames(name: str) -> None:
    errors = validate(_SCHEMA, parse(as_apollo_sends(name)), VALIDATION_RULES)
    assert not errors, [e.message for e in errors]


@pytest.fixture(scope="module")
def seeded(api_url: str) -> Dict[str, str]:
    """A store with one of everything the UI's pages show; placeholder -> id (the corpus variables' @names)."""
    api = Api(api_url)
    name = unique("ui-corpus")
    tenant = api.mutate("create_tenant", {"name": name, "slug": name})["id"]
    project = api.mutate("create_project", {"tenant_id": tenant, "name": unique("project")})["id"]
    flow = prefect.Flow("ui corpus")
    a, b = prefect.Task("a", slug="a"), prefect.Task("b", slug="b")
    flow.chain(a, b)
    flow_id = register(api, project, flow)
    flow_row = row(api, "flow", flow_id, "flow_group_id version_group_id")
    run_id = api.mutate("create_flow_run", {"flow_id": flow_id})["id"]
    send(api, "set_flow_run_states", flowRunId=run_id, version=1, state=state("Running"))
    task_runs = rows(api, "task_run", {"flow_run_id": {"_eq": run_id}}, "id version task_id")
    send(api, "set_task_run_states", input=[{"task_run_id": t["id"], "version": t["version"],
                                             "state": state("Failed")} for t in task_runs])
    send(api, "write_run_log", flowRunId=run_id, name="ui", message="seeded")
    agent = api.mutate("register_agent", {"tenant_id": tenant, "name": unique("agent"), "type": "LocalAgent",
                                          "labels": []})["id"]
    config = api.mutate("create_agent_config", {"tenant_id": tenant, "name": "c", "settings": {}})["id"]
    hook = api.mutate("create_cloud_hook", {"tenant_id": tenant, "type": "PREFECT_MESSAGE", "states": ["FAILED"],
                                            "config": {}})["id"]
    send(api, "set_flow_run_states", flowRunId=run_id, version=2, state=state("Failed", "seeded"))
    return {"@tenant": tenant, "@tenant_slug": name, "@project": project, "@flow": flow_id,
            "@flow_group": flow_row["flow_group_id"], "@version_group": flow_row["version_group_id"],
            "@task": task_runs[0]["task_id"], "@flow_run": run_id, "@task_run": task_runs[0]["id"],
            "@agent": agent, "@agent_config": config, "@cloud_hook": hook}


def _resolved(value: Any, ids: Dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder in sorted(ids, key=len, reverse=True):
            value = value.replace(placeholder, ids[placeholder])
        return value
    if isinstance(value, list):
        return [_resolved(v, ids) for v in value]
    return value


@pytest.mark.parametrize("name", CORPUS_QUERIES)
def test_each_corpus_query_answers_on_a_seeded_store(api: Api, seeded: Dict[str, str], name: str) -> None:
    variables = {k: _resolved(v, seeded) for k, v in CORPUS_VARIABLES[name].items()}
    answer = api.post(as_apollo_sends(name), variables)
    assert not answer.get("errors"), answer.get("errors")
    assert answer["data"] and all(key in answer["data"] for key in _root_names(name))


def _root_names(name: str) -> List[str]:
    operation = next(d for d in parse((CORPUS / f"{name}.gql").read_text()).definitions
                     if isinstance(d, OperationDefinitionNode))
    return [(s.alias or s.name).value for s in operation.selection_set.selections if isinstance(s, FieldNode)]


def test_the_seeded_run_is_seen_by_the_flow_run_page_query(api: Api, seeded: Dict[str, str]) -> None:
    # the placeholders reach real rows: the run page's query finds the seeded run and its Failed state
    variables = {k: _resolved(v, seeded) for k, v in CORPUS_VARIABLES["ui_flow_run_by_pk"].items()}
    run = api.data(as_apollo_sends("ui_flow_run_by_pk"), variables)["flow_run_by_pk"]
    assert run["id"] == seeded["@flow_run"] and run["state"] == "Failed" and run["__typename"] == "flow_run"


def test_cloud_only_operations_in_a_ui_batch_fail_alone_with_servers_error(api_url: str) -> None:
    batch = [{"operationName": "UpdateUserSettings", "query": "mutation UpdateUserSettings($input: "
              "update_user_settings_input!) { update_user_settings(input: $input) { success } }",
              "variables": {"input": {"settings": {"flowsPageSize": 25}}}},
             {"query": "query { api { __typename backend version } }"},
             {"query": "mutation { send_feedback(input: {message: \"hi\"}) { success } }"}]
    answers = requests.post(api_url, json=batch, timeout=10).json()
    assert len(answers) == 3
    assert any(e["message"].startswith('Cannot query field "update_user_settings" on type "Mutation".')
               for e in answers[0]["errors"])
    assert "errors" not in answers[1] and answers[1]["data"]["api"]["backend"] == "SERVER"
    assert answers[2]["errors"][0]["message"].startswith('Cannot query field "send_feedback" on type "Mutation".')
