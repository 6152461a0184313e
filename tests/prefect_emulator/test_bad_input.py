"""Bad requests get a GraphQL error naming the problem (never a traceback, a 500 or a hang), the emulator keeps
serving; plus the state rules a client relies on, and API-key checks as Prefect Cloud does them."""
from __future__ import annotations

import http.client
import os
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import requests
from prefect import Client
from prefect.engine.state import Cancelled, Failed, Running, Scheduled, Submitted, Success

from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.graphql_log import parse_graphql_log
from tests.prefect_emulator.in_process import InThread
from tests.prefect_emulator.prefect_session import flow_run_rows, register_flow_script, write_flow_script
from prefect_emulator.testing import REPO_ROOT, Emulator, prefect_env, stop, wait_for_http

MB = 1024 * 1024
CREATE_PROJECT = "mutation($input: create_project_input!) { create_project(input: $input) { id } }"


def body(**fields) -> bytes:
    """A JSON request body."""
    return json.dumps(fields).encode()


# (raw request body, accepted HTTP statuses, words the error message must contain (case-insensitive))
BAD_BODIES = [
    pytest.param(b"{not json", {400}, ["json"], id="malformed-json"),
    pytest.param(b"", {400}, ["json"], id="empty-body"),
    # an array is Apollo's batch (test_wire_format.py); a JSON string or number is no request at all
    pytest.param(b'"a string"', {200, 400}, ["object"], id="json-not-an-object"),
    pytest.param(b'[]', {400}, ["empty batch"], id="empty-batch"),
    pytest.param(body(variables={}), {200, 400}, ["query"], id="no-query"),
    pytest.param(body(query=5), {200, 400}, ["query"], id="query-not-a-string"),
    pytest.param(body(query="{ hello }", variables="x=1"), {200, 400}, ["variables"], id="variables-not-an-object"),
    pytest.param(body(query="query { flow_run { id "), {200}, ["syntax error"], id="invalid-graphql"),
    pytest.param(body(query="query { no_such_field }"), {200}, ["no_such_field"], id="unknown-root-field"),
    pytest.param(body(query="query { flow_run { id no_such_column } }"), {200}, ["no_such_column"],
                 id="unknown-nested-field"),
    pytest.param(body(query="mutation { no_such_mutation(input: {}) { success } }"), {200},
                 ["no_such_mutation"], id="unknown-mutation"),
    pytest.param(body(query="query($x: no_such_type!) { hello }", variables={"x": 1}), {200}, ["no_such_type"],
                 id="unknown-input-type"),
    pytest.param(body(query="query A { hello }", operationName="B"), {200}, ["B"], id="unknown-operation-name"),
    pytest.param(body(query="query A { hello } query B { hello }"), {200}, ["operation"],
                 id="several-operations-no-name"),
    pytest.param(body(query=CREATE_PROJECT, variables={"input": {"name": 123}}), {200}, ["$input", "name"],
                 id="wrong-variable-type-nested"),
    pytest.param(body(query=CREATE_PROJECT, variables={"input": "my project"}), {200}, ["$input"],
                 id="wrong-variable-type-scalar-for-object"),
    pytest.param(body(query=CREATE_PROJECT, variables={}), {200}, ["$input"], id="missing-required-variable"),
    pytest.param(body(query='query { flow_run(limit: "ten") { id } }'), {200}, ["ten"],
                 id="wrong-literal-argument-type"),
    pytest.param(b"\xff\xfe{}", {400}, ["json"], id="not-utf8"),
    pytest.param(b"[" * 200000 + b"]" * 200000, {400}, ["json"], id="json-nested-too-deep"),
    pytest.param(body(query="query { " + "flow_run { " * 5000 + "id" + " }" * 5001), {200, 400}, [],
                 id="graphql-nested-too-deep"),
]


def assert_clean_error(resp: requests.Response, statuses: set, words: List[str]) -> str:
    """Checks one refused request's answer: status, JSON `{"errors": [{"message": ...}]}`, no traceback."""
    assert "Traceback" not in resp.text and 'File "' not in resp.text, f"traceback in the answer: {resp.text}"
    assert resp.status_code in statuses, f"HTTP {resp.status_code} (wanted {statuses}): {resp.text[:500]}"
    answer = resp.json()
    errors = answer.get("errors")
    assert isinstance(errors, list) and errors, f"no errors list: {answer}"
    assert all(isinstance(e.get("message"), str) and e["message"] for e in errors), answer
    text = " ".join(e["message"] for e in errors)
    missing = [w for w in words if w.lower() not in text.lower()]
    assert not missing, f"error does not name {missing}: {text!r}"
    return text


def assert_still_serving(emu: Emulator) -> None:
    """/health answers and valid queries still work."""
    assert requests.get(emu.url + "/health", timeout=5).status_code == 200
    answer = emu.graphql("query { hello }")
    assert "errors" not in answer and answer["data"]["hello"], answer
    answer = emu.graphql("query Tenants { tenant { id } }")
    assert "errors" not in answer and len(answer["data"]["tenant"]) >= 1, answer


@pytest.mark.parametrize("raw, statuses, words", BAD_BODIES)
@pytest.mark.parametrize("path", ["/", "/graphql"])
def test_bad_request_gets_an_error_naming_the_problem(module_emulator: Emulator, module_client: Client,
                                                      path: str, raw: bytes, statuses: set,
                                                      words: List[str]) -> None:
    resp = requests.post(module_emulator.url + path, data=raw, headers={"Content-Type": "application/json"},
                         timeout=10)
    assert_clean_error(resp, statuses, words)
    assert_still_serving(module_emulator)


def test_unknown_field_is_logged_as_a_failed_operation_naming_it(module_emulator: Emulator,
                                                                 module_client: Client) -> None:
    field = "no_such_field_" + uuid.uuid4().hex[:6]
    module_emulator.graphql("query LookForIt { %s }" % field)
    records = [r for r in parse_graphql_log(module_emulator.log()) if field in (r["error"] or "")]
    assert records, f"no GRAPHQL log line names {field}"
    assert records[-1]["ok"] is False and records[-1]["operation"] == "LookForIt"


def test_body_over_10_mb_is_refused_from_its_content_length(module_emulator: Emulator,
                                                            module_client: Client) -> None:
    # only the headers are sent: an emulator that tried to read the body would hang until the timeout
    conn = http.client.HTTPConnection("127.0.0.1", module_emulator.port, timeout=10)
    try:
        conn.putrequest("POST", "/graphql")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(11 * MB))
        conn.endheaders()
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    assert resp.status == 413, f"HTTP {resp.status}: {text[:300]}"
    message = json.loads(text)["errors"][0]["message"]
    assert "10 MB" in message and "Traceback" not in text, message
    assert_still_serving(module_emulator)


def test_body_over_10_mb_sent_whole_gets_413_not_a_reset_connection(module_emulator: Emulator,
                                                                     module_client: Client) -> None:
    big = body(query="{ hello }", variables={"pad": "x" * (11 * MB)})
    resp = requests.post(module_emulator.url, data=big, headers={"Content-Type": "application/json"}, timeout=30)
    assert_clean_error(resp, {413}, ["10 MB"])
    assert_still_serving(module_emulator)


def test_stalled_client_does_not_block_others(module_emulator: Emulator, module_client: Client) -> None:
    # announces 1000 bytes, sends 10, then nothing: other clients must still be served meanwhile
    conn = http.client.HTTPConnection("127.0.0.1", module_emulator.port, timeout=120)
    try:
        conn.putrequest("POST", "/graphql")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", "1000")
        conn.endheaders()
        conn.send(b'{"query": ')
        assert_still_serving(module_emulator)
    finally:
        conn.close()
    assert_still_serving(module_emulator)


@pytest.mark.parametrize("headers, status", [
    pytest.param({}, 411, id="no-content-length"),
    pytest.param({"Content-Length": "-5"}, 400, id="negative-content-length"),
    pytest.param({"Content-Length": "ten"}, 400, id="non-numeric-content-length"),
])
def test_missing_or_invalid_content_length_is_named(module_emulator: Emulator, module_client: Client,
                                                    headers: dict, status: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", module_emulator.port, timeout=10)
    try:
        conn.putrequest("POST", "/graphql", skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        text = resp.read().decode()
    finally:
        conn.close()
    assert resp.status == status, f"HTTP {resp.status}: {text[:300]}"
    assert "Content-Length" in json.loads(text)["errors"][0]["message"] and "Traceback" not in text
    assert_still_serving(module_emulator)


def test_unknown_path_gets_a_json_404_naming_the_graphql_paths(module_emulator: Emulator,
                                                               module_client: Client) -> None:
    resp = requests.post(module_emulator.url + "/v1/graphql", json={"query": "{ hello }"}, timeout=10)
    assert_clean_error(resp, {404}, ["/v1/graphql", "/graphql"])


def _post_on(conn: http.client.HTTPConnection, path: str, payload: bytes) -> http.client.HTTPResponse:
    conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp


def test_requests_share_one_kept_alive_connection(module_emulator: Emulator, module_client: Client) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", module_emulator.port, timeout=10)
    try:
        first = _post_on(conn, "/graphql", body(query="{ hello }"))
        sock = conn.sock
        second = _post_on(conn, "/graphql", body(query="{ hello }"))
        assert first.status == second.status == 200 and first.version == 11
        assert sock is not None and conn.sock is sock, "the second request needed a new connection"
    finally:
        conn.close()


def test_a_kept_alive_connection_sends_without_waiting_for_acks() -> None:
    # With Nagle's algorithm on, each answer's body waited for the ACK of its headers, which clients delay by up
    # to 40 ms: every request on a kept-alive connection took 40 ms (scripts/benchmark.py --only history shows
    # the figure). The connection's socket on the server's side must have TCP_NODELAY set.
    with InThread() as emu:
        sockets: List[socket.socket] = []
        finish = emu.server.finish_request
        emu.server.finish_request = lambda request, address: (sockets.append(request), finish(request, address))
        conn = http.client.HTTPConnection("127.0.0.1", emu.server.server_address[1], timeout=10)
        try:
            assert _post_on(conn, "/graphql", body(query="{ hello }")).status == 200
            # the handler still holds the connection open, waiting for the next request
            assert [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0 for s in sockets] == [True]
        finally:
            conn.close()


@pytest.mark.parametrize("path", ["/v1/graphql", "/graphql"])
def test_an_answer_sent_before_the_body_was_read_closes_the_connection(module_emulator: Emulator,
                                                                       module_client: Client, path: str) -> None:
    # a 404 (body unread) must close, or the unread body would be read as the next request; a 200 must not
    conn = http.client.HTTPConnection("127.0.0.1", module_emulator.port, timeout=10)
    try:
        resp = _post_on(conn, path, body(query="{ hello }"))
        closes = resp.getheader("Connection") == "close"
        assert closes == (path == "/v1/graphql"), (resp.status, resp.getheaders())
        again = _post_on(conn, "/graphql", body(query="{ hello }"))  # http.client reconnects after a close
        assert again.status == 200
    finally:
        conn.close()


def test_body_just_under_10_mb_is_accepted(module_emulator: Emulator, module_client: Client) -> None:
    fits = body(query="{ hello }", variables={"pad": "x" * (9 * MB)})
    resp = requests.post(module_emulator.url, data=fits, headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 200 and "errors" not in resp.json(), resp.text[:300]


# ---- state rules -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def flow_id(module_client: Client, module_workdir: Path) -> str:
    """A registered flow (three tasks: greeting, greet-1, shout-1) that no agent in this module polls for."""
    script = write_flow_script(module_workdir / "rules.py", "rules", ["rules-" + uuid.uuid4().hex[:8]])
    return register_flow_script(script, PROJECT)


def states_of(client: Client, run_id: str) -> List[Tuple[str, int]]:
    """(state, version) of every state the run went through, by version."""
    answer = client.graphql("""query($id: uuid!) {
        flow_run_by_pk(id: $id) { states(order_by: {version: asc}) { state version } }
    }""", variables={"id": run_id})
    return [(s.state, s.version) for s in answer.data.flow_run_by_pk.states]


def test_each_state_update_increments_the_run_version(module_client: Client, flow_id: str) -> None:
    run_id = module_client.create_flow_run(flow_id=flow_id)
    start = flow_run_rows(module_client, [run_id])[run_id]["version"]
    seen = [start]
    for state in (Submitted(message="s"), Running(message="r"), Success(message="ok")):
        module_client.set_flow_run_state(run_id, state, version=seen[-1])
        seen.append(flow_run_rows(module_client, [run_id])[run_id]["version"])
    assert seen == [start, start + 1, start + 2, start + 3]
    history = states_of(module_client, run_id)
    assert [s for s, _ in history][-3:] == ["Submitted", "Running", "Success"]
    assert [v for _, v in history][-3:] == seen[1:]


@pytest.mark.parametrize("late_state", [Running(message="late"), Failed(message="late"), Scheduled(message="late")],
                         ids=lambda s: type(s).__name__)
def test_a_finished_run_takes_a_late_state_as_on_server(module_client: Client, flow_id: str, late_state) -> None:
    """Server has no "finished stays finished" guard: the UI's "Mark as", a restart or a runner's late update
    after the zombie killer failed its run all move a finished run on."""
    run_id = module_client.create_flow_run(flow_id=flow_id)
    for state in (Submitted(message="s"), Running(message="r"), Success(message="done")):
        module_client.set_flow_run_state(run_id, state)
    module_client.set_flow_run_state(run_id, late_state)
    assert type(module_client.get_flow_run_state(run_id)) is type(late_state)
    assert flow_run_rows(module_client, [run_id])[run_id]["state"] == type(late_state).__name__


def test_a_finished_run_refuses_a_second_submitted_within_the_lock(module_client: Client, flow_id: str) -> None:
    """What still refuses a late Submitted is Server's 30 s submitted lock, not the run being finished."""
    run_id = module_client.create_flow_run(flow_id=flow_id)
    for state in (Submitted(message="s"), Running(message="r"), Success(message="done")):
        module_client.set_flow_run_state(run_id, state)
    with pytest.raises(Exception, match="State update failed: this run has already been submitted."):
        module_client.set_flow_run_state(run_id, Submitted(message="late"))
    assert flow_run_rows(module_client, [run_id])[run_id]["state"] == "Success"


def task_runs_for(client: Client, run_id: str, flow_id: str) -> Dict[str, str]:
    """Creates the run's three task runs (get_or_create_task_run_info, as CloudTaskRunner does) and returns
    {task slug: task run id}."""
    tasks = client.graphql({"query": {'flow_by_pk(id: "%s")' % flow_id: {"tasks": {"id", "slug"}}}})
    return {t.slug: client.get_task_run_info(run_id, t.id).id for t in tasks.data.flow_by_pk.tasks}


def task_run_states(client: Client, run_id: str) -> Dict[str, str]:
    """{task slug: state name} of the run's task runs, read with Client.get_flow_run_info."""
    return {t.task_slug: type(t.state).__name__ for t in client.get_flow_run_info(run_id).task_runs}


def test_cancel_before_running_cancels_the_run_and_its_unfinished_task_runs(module_client: Client,
                                                                            flow_id: str) -> None:
    run_id = module_client.create_flow_run(flow_id=flow_id)
    module_client.set_flow_run_state(run_id, Submitted(message="s"))
    ids = task_runs_for(module_client, run_id, flow_id)
    module_client.set_task_run_state(ids["greeting"], Success(message="finished before the cancel"))

    module_client.cancel_flow_run(run_id)

    assert isinstance(module_client.get_flow_run_state(run_id), Cancelled)
    assert task_run_states(module_client, run_id) == {
        "greeting": "Success", "greet-1": "Cancelled", "shout-1": "Cancelled"}


def test_cancel_while_running_ends_cancelled_with_unfinished_task_runs_cancelled(module_client: Client,
                                                                                 flow_id: str) -> None:
    run_id = module_client.create_flow_run(flow_id=flow_id)
    module_client.set_flow_run_state(run_id, Submitted(message="s"))
    module_client.set_flow_run_state(run_id, Running(message="r"))
    ids = task_runs_for(module_client, run_id, flow_id)
    module_client.set_task_run_state(ids["greeting"], Success(message="finished before the cancel"))
    module_client.set_task_run_state(ids["greet-1"], Running(message="busy"))

    module_client.cancel_flow_run(run_id)

    # Server answers a Running run with Cancelling; its flow runner then sets Cancelled, as done here
    state = module_client.get_flow_run_state(run_id)
    assert type(state).__name__ in {"Cancelling", "Cancelled"}, state
    if not isinstance(state, Cancelled):
        module_client.set_flow_run_state(run_id, Cancelled(message="flow runner saw Cancelling"))
    assert isinstance(module_client.get_flow_run_state(run_id), Cancelled)
    assert task_run_states(module_client, run_id) == {
        "greeting": "Success", "greet-1": "Cancelled", "shout-1": "Cancelled"}


def test_cancel_of_a_finished_run_changes_nothing(module_client: Client, flow_id: str) -> None:
    run_id = module_client.create_flow_run(flow_id=flow_id)
    for state in (Submitted(message="s"), Running(message="r"), Success(message="done")):
        module_client.set_flow_run_state(run_id, state)
    version = flow_run_rows(module_client, [run_id])[run_id]["version"]

    module_client.cancel_flow_run(run_id)

    row = flow_run_rows(module_client, [run_id])[run_id]
    assert (row["state"], row["version"]) == ("Success", version)


# ---- API keys ----------------------------------------------------------------------------------------------

API_KEY = "emulator-test-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def keyed_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator requiring API_KEY (given through its environment), holding one tenant (a Cloud key always has one)."""
    with Emulator(tmp_path_factory.mktemp("keyed"), api_key=API_KEY) as emu:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        if not (emu.graphql("query { auth_info { tenant_id } }", headers=auth).get("data") or {}).get("auth_info"):
            emu.graphql('mutation { create_tenant(input: {name: "keyed", slug: "keyed"}) { id } }', headers=auth)
        yield emu


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer wrong-key"}, id="wrong-key"),
    pytest.param({"Authorization": f"Bearer {API_KEY}x"}, id="right-key-with-extra"),
    pytest.param({"Authorization": API_KEY}, id="no-bearer-prefix"),
])
def test_request_without_the_right_key_is_refused(keyed_emulator: Emulator, headers: dict) -> None:
    resp = requests.post(keyed_emulator.url, json={"query": "query { tenant { id name } }"}, headers=headers,
                         timeout=10)
    text = assert_clean_error(resp, {200, 401}, [])
    assert any(w in text.lower() for w in ("unauthenticated", "unauthorized", "api key", "authorization")), text
    if resp.status_code == 200:
        # prefect's Client turns exactly this code into AuthorizationError ("Invalid Prefect Cloud API key")
        assert "UNAUTHENTICATED" in json.dumps(resp.json()["errors"]), resp.text
    assert "data" not in resp.json() or not (resp.json()["data"] or {}).get("tenant"), "data leaked"
    assert API_KEY not in resp.text, "the answer echoes the real key"
    assert requests.get(keyed_emulator.url + "/health", timeout=5).status_code == 200


def test_request_with_the_right_key_is_answered(keyed_emulator: Emulator) -> None:
    answer = keyed_emulator.graphql("query { auth_info { tenant_id } tenant { id } }",
                                    headers={"Authorization": f"Bearer {API_KEY}"})
    assert "errors" not in answer, answer
    assert answer["data"]["auth_info"]["tenant_id"] in {t["id"] for t in answer["data"]["tenant"]}


def auth_login(emu: Emulator, home: Path, key: str) -> subprocess.CompletedProcess:
    """Runs `prefect auth login --key KEY` against `emu` with the cloud backend (the key as the CLI takes it)."""
    home.mkdir(parents=True, exist_ok=True)
    env = prefect_env(emu.url, home, PREFECT__BACKEND="cloud")
    return subprocess.run([sys.executable, "-m", "prefect", "auth", "login", "--key", key], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_prefect_auth_login_with_the_right_key_succeeds(keyed_emulator: Emulator, tmp_path: Path) -> None:
    done = auth_login(keyed_emulator, tmp_path / "home", API_KEY)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Logged in" in output
    assert API_KEY in (tmp_path / "home" / "auth.toml").read_text()  # prefect saved it for later commands


def test_prefect_auth_login_with_a_wrong_key_fails_clearly(keyed_emulator: Emulator, tmp_path: Path) -> None:
    done = auth_login(keyed_emulator, tmp_path / "home", "not-the-key")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output, output
    assert "Invalid Prefect Cloud API key" in output or "Unauthorized" in output, output
    assert not (tmp_path / "home" / "auth.toml").exists()


def test_the_key_never_reaches_the_emulator_log(keyed_emulator: Emulator) -> None:
    keyed_emulator.graphql("query { hello }", headers={"Authorization": f"Bearer {API_KEY}"})
    keyed_emulator.graphql("query { hello }", headers={"Authorization": "Bearer wrong-key"})
    log = keyed_emulator.log()
    assert "GRAPHQL " in log
    assert API_KEY not in log and "wrong-key" not in log


def test_the_key_can_come_from_the_environment_instead_of_the_command_line(tmp_path: Path) -> None:
    key = "env-key-" + uuid.uuid4().hex
    emu = Emulator(tmp_path)  # no --api-key on its command line
    env = dict(os.environ, PREFECT_EMULATOR_API_KEY=key)
    with open(emu.log_path, "ab") as log:
        proc = subprocess.Popen(emu.args(), cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for_http(emu.url + "/health", proc=proc)
        refused = requests.post(emu.url, json={"query": "{ hello }"}, timeout=10)
        assert_clean_error(refused, {200, 401}, [])
        answer = emu.graphql("{ hello }", headers={"Authorization": f"Bearer {key}"})
        assert "errors" not in answer and answer["data"]["hello"], answer
    finally:
        stop(proc)
    assert key not in emu.log()


def test_task_run_cannot_run_unless_its_flow_run_runs(module_client: Client, flow_id: str) -> None:
    run_id = module_client.create_flow_run(flow_id=flow_id)
    ids = task_runs_for(module_client, run_id, flow_id)
    # get_or_create: a second call (a retried CloudTaskRunner) finds the same task run
    assert task_runs_for(module_client, run_id, flow_id) == ids

    with pytest.raises(Exception) as refused:
        module_client.set_task_run_state(ids["greet-1"], Running(message="too early"))
    # Server's own wording (api/states.py set_task_run_state)
    assert "State update failed" in str(refused.value) and "not in a running state" in str(refused.value)

    module_client.set_flow_run_state(run_id, Submitted(message="s"))
    module_client.set_flow_run_state(run_id, Running(message="r"))
    module_client.set_task_run_state(ids["greet-1"], Running(message="now"))
    assert task_run_states(module_client, run_id)["greet-1"] == "Running"
    module_client.cancel_flow_run(run_id)


def test_failed_run_restarted_as_scheduled_goes_back_to_the_queue(module_client: Client, flow_id: str) -> None:
    # the UI's "Restart" sets a finished run back to Scheduled; Server allows it and agents pick it up again
    label = "restart-" + uuid.uuid4().hex[:8]
    run_id = module_client.create_flow_run(flow_id=flow_id, labels=[label])
    for state in (Submitted(message="s"), Running(message="r"), Failed(message="boom")):
        module_client.set_flow_run_state(run_id, state)

    module_client.set_flow_run_state(run_id, Scheduled(message="restarted"))

    assert flow_run_rows(module_client, [run_id])[run_id]["state"] == "Scheduled"
    polled = module_client.graphql(
        "mutation($input: get_runs_in_queue_input!) { get_runs_in_queue(input: $input) { flow_run_ids } }",
        variables={"input": {"labels": [label], "tenant_id": module_client.tenant_id}})
    assert polled.data.get_runs_in_queue.flow_run_ids == [run_id]
    module_client.cancel_flow_run(run_id)
