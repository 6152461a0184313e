"""Cloud hooks as Prefect Server has them (api/cloud_hooks.py and its tests): stored, fired on the flow run
states they name with Server's payload, off the request path, each failure logged.

WEBHOOK is called for real, at an HTTP server of the test's own on loopback; Slack, Twilio and PagerDuty go
through a recording sender (their addresses are fixed internet services).
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from prefect.engine.state import Failed, Running, Success

from prefect_emulator.cloud_hooks import PAGERDUTY_URL
from prefect_emulator.hook_sender import http_sender
from tests.prefect_emulator.in_process import InProcess, Recorder
from prefect_emulator.testing import Emulator

UNKNOWN = "6f1c2a4e-9e4b-4f5e-8a1d-2b3c4d5e6f70"
WAIT = 10.0  # seconds a hook call may take to arrive (bounded wait on an event, never a sleep)

CONFIGS = {
    "WEBHOOK": {"url": "http://127.0.0.1:9/hook"},
    "SLACK_WEBHOOK": {"url": "https://hooks.slack.test/services/x"},
    "PREFECT_MESSAGE": {},
    "TWILIO": {"account_sid": "sid", "auth_token": "token", "messaging_service_sid": "msid",
               "to": ["+15555550100", "+15555550101"]},
    "PAGERDUTY": {"api_token": "pd-token", "routing_key": "rk", "severity": "info"},
}
HOOK_FIELDS = "id tenant_id name type states config active version_group_id"


class Receiver:
    """An HTTP server on 127.0.0.1 that records the POSTs it gets; `hold` makes it wait before answering."""

    def __init__(self) -> None:
        self.bodies: List[Dict[str, Any]] = []
        self.headers: List[Dict[str, str]] = []
        self.arrived = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.bodies.append(body)
                receiver.headers.append(dict(self.headers))
                receiver.arrived.set()
                receiver.hold.wait(WAIT)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def create_hook(emu: InProcess, tenant_id: str, kind: str, states: List[str], config: dict, **more: Any) -> str:
    return emu.mutate("create_cloud_hook", dict(tenant_id=tenant_id, type=kind, states=states, config=config,
                                                **more))["id"]


def hook_row(emu: InProcess, hook_id: str) -> Dict[str, Any]:
    return emu.data(f"query ($id: uuid!) {{ cloud_hook_by_pk(id: $id) {{ {HOOK_FIELDS} }} }}",
                    {"id": hook_id})["cloud_hook_by_pk"]


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_every_hook_type_server_accepts_is_stored(kind: str) -> None:
    emu = InProcess()
    ids = emu.flow_run()
    hook_id = create_hook(emu, ids["tenant_id"], kind, ["failed", "FAILED", "Success"], CONFIGS[kind],
                          name="mine", version_group_id=ids["version_group_id"])
    row = hook_row(emu, hook_id)
    assert row == {"id": hook_id, "tenant_id": ids["tenant_id"], "name": "mine", "type": kind,
                   "states": ["FAILED", "SUCCESS"], "config": CONFIGS[kind], "active": True,
                   "version_group_id": ids["version_group_id"]}
    listed = emu.data(f"{{ cloud_hook(where: {{tenant_id: {{_eq: \"{ids['tenant_id']}\"}}}}) {{ id }} }}")
    assert listed["cloud_hook"] == [{"id": hook_id}]


@pytest.mark.parametrize("kind, states, config, message", [
    ("WEBHOOK", [], CONFIGS["WEBHOOK"], "Invalid states"),
    ("WEBHOOK", ["FAILED", "Exploded"], CONFIGS["WEBHOOK"], "Invalid states"),
    ("WEBHOOK", ["FAILED"], {"address": "x"}, "Invalid config; expected `url`"),
    ("SLACK_WEBHOOK", ["FAILED"], None, "Invalid config; expected `url`"),
    ("TWILIO", ["FAILED"], dict(CONFIGS["TWILIO"], to=[]), "`messaging_service_sid`, and `to`"),
    ("PAGERDUTY", ["FAILED"], {"api_token": "t"}, "`api_token`, `routing_key`, & `severity`"),
    ("PAGERDUTY", ["FAILED"], dict(CONFIGS["PAGERDUTY"], severity="loud"), "severity must be one of"),
])
def test_a_bad_hook_is_refused_with_servers_message(kind: str, states: list, config: Any, message: str) -> None:
    emu = InProcess()
    tenant = emu.flow_run()["tenant_id"]
    answer = emu.answer("mutation ($input: create_cloud_hook_input!) { create_cloud_hook(input: $input) { id } }",
                        {"input": {"tenant_id": tenant, "type": kind, "states": states, "config": config}})
    assert message in answer["errors"][0]["message"]
    assert emu.data("{ cloud_hook { id } }")["cloud_hook"] == []


def test_a_hook_for_an_unknown_tenant_is_refused() -> None:
    answer = InProcess().answer(
        "mutation ($input: create_cloud_hook_input!) { create_cloud_hook(input: $input) { id } }",
        {"input": {"tenant_id": UNKNOWN, "type": "WEBHOOK", "states": ["FAILED"],
                   "config": CONFIGS["WEBHOOK"]}})
    assert answer["errors"][0]["message"] == "Invalid tenant ID"


def test_a_webhook_gets_servers_payload_on_the_states_it_names(receiver: Receiver) -> None:
    emu = InProcess(sender=http_sender)
    ids = emu.flow_run()
    create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": receiver.url})
    emu.set_state(ids["flow_run_id"], Running())
    assert not receiver.arrived.is_set()  # Running is not named
    emu.set_state(ids["flow_run_id"], Failed("it broke"))
    assert receiver.arrived.wait(WAIT)
    emu.hooks.join()
    assert len(receiver.bodies) == 1
    event = receiver.bodies[0]["event"]
    assert event["type"] == "FlowRunStateChange" and event["is_test_event"] is False
    assert receiver.headers[0]["X-PREFECT-EVENT-ID"] == event["id"]
    assert event["flow_run"]["id"] == ids["flow_run_id"] and event["flow_run"]["state"] == "Running"
    assert event["state"]["state"] == "Failed" and event["state"]["serialized_state"]["message"] == "it broke"
    assert event["state"]["version"] == 3 and event["state"]["flow_run_id"] == ids["flow_run_id"]
    assert event["flow"]["id"] == ids["flow_id"] and event["flow"]["name"] == "hooked"
    assert event["flow"]["version_group_id"] == ids["version_group_id"]
    assert event["tenant"] == {"id": ids["tenant_id"], "slug": "hooked"}


def test_only_active_hooks_of_the_runs_version_group_fire() -> None:
    recorder = Recorder()
    emu = InProcess(sender=recorder)
    ids = emu.flow_run()
    tenant = ids["tenant_id"]
    mine = create_hook(emu, tenant, "WEBHOOK", ["SUCCESS"], {"url": "http://127.0.0.1:9/mine"},
                       version_group_id=ids["version_group_id"])
    create_hook(emu, tenant, "WEBHOOK", ["SUCCESS"], {"url": "http://127.0.0.1:9/other"}, version_group_id="other")
    paused = create_hook(emu, tenant, "WEBHOOK", ["SUCCESS"], {"url": "http://127.0.0.1:9/paused"})
    assert emu.mutate("set_cloud_hook_inactive", {"cloud_hook_id": paused}, "success")["success"] is True
    emu.set_state(ids["flow_run_id"], Success())
    emu.hooks.join()
    assert [r.url for r in recorder.requests] == ["http://127.0.0.1:9/mine"]
    assert emu.mutate("set_cloud_hook_active", {"cloud_hook_id": paused}, "success")["success"] is True
    assert emu.mutate("delete_cloud_hook", {"cloud_hook_id": mine}, "success")["success"] is True
    emu.set_state(ids["flow_run_id"], Success())
    emu.hooks.join()
    assert [r.url for r in recorder.requests[1:]] == ["http://127.0.0.1:9/paused"]
    unknown = {"cloud_hook_id": mine}
    for name in ("delete_cloud_hook", "set_cloud_hook_active", "set_cloud_hook_inactive"):
        assert emu.mutate(name, unknown, "success")["success"] is False


def test_the_initial_scheduled_state_fires_too_as_on_server() -> None:
    # Server's create_flow_run sets Scheduled through set_flow_run_state, which calls the hooks
    recorder = Recorder()
    emu = InProcess(sender=recorder)
    ids = emu.flow_run()
    create_hook(emu, ids["tenant_id"], "WEBHOOK", ["SCHEDULED"], {"url": "http://127.0.0.1:9/s"})
    second = emu.mutate("create_flow_run", {"flow_id": ids["flow_id"]})["id"]
    emu.hooks.join()
    assert [r.json["event"]["flow_run"]["id"] for r in recorder.requests] == [second]


def test_a_slow_hook_never_delays_the_state_change(receiver: Receiver) -> None:
    emu = InProcess(sender=http_sender)
    ids = emu.flow_run()
    create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": receiver.url})
    receiver.hold.clear()  # the hook's address accepts the call and then does not answer
    answer = emu.set_state(ids["flow_run_id"], Failed())
    assert answer["data"]["set_flow_run_states"]["states"] == [{"status": "SUCCESS"}]
    assert receiver.arrived.wait(WAIT)
    # the state change was answered while its hook still waited for its address
    assert emu.data(f"{{ flow_run_by_pk(id: \"{ids['flow_run_id']}\") {{ state }} }}")["flow_run_by_pk"] == \
        {"state": "Failed"}
    receiver.hold.set()
    emu.hooks.join()


def test_a_dead_hook_is_logged_and_fails_nothing(capfd: pytest.CaptureFixture) -> None:
    emu = InProcess(sender=http_sender)
    ids = emu.flow_run()
    # port 9 (discard) on loopback: nothing listens there, the connection is refused
    hook = create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": "http://127.0.0.1:9/hook?k=secret"})
    answer = emu.set_state(ids["flow_run_id"], Failed())
    assert answer["data"]["set_flow_run_states"]["states"] == [{"status": "SUCCESS"}]
    emu.hooks.join()
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("CLOUD-HOOK")]
    assert len(lines) == 1 and hook in lines[0] and "failed" in lines[0] and "127.0.0.1:9/hook" in lines[0]
    assert "secret" not in lines[0]  # a hook's query string may carry its key


def test_a_rolled_back_state_change_calls_nothing() -> None:
    recorder = Recorder()
    emu = InProcess(sender=recorder)
    ids = emu.flow_run()
    create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": "http://127.0.0.1:9/hook"})
    query = ("mutation ($input: set_flow_run_states_input!) { set_flow_run_states(input: $input) "
             "{ states { status } } }")
    both = [{"flow_run_id": ids["flow_run_id"], "state": Failed().serialize()},
            {"flow_run_id": UNKNOWN, "state": Failed().serialize()}]
    assert emu.answer(query, {"input": {"states": both}})["errors"]
    emu.hooks.join()
    assert recorder.requests == []


def test_slack_twilio_and_pagerduty_make_servers_requests() -> None:
    recorder = Recorder()
    emu = InProcess(sender=recorder)
    ids = emu.flow_run()
    for kind in ("SLACK_WEBHOOK", "TWILIO", "PAGERDUTY"):
        create_hook(emu, ids["tenant_id"], kind, ["FAILED"], CONFIGS[kind])
    emu.set_state(ids["flow_run_id"], Failed("boom"))
    emu.hooks.join()
    by_type: Dict[str, list] = {}
    for request in recorder.requests:
        by_type.setdefault(request.hook_type, []).append(request)
    run_name = by_type["SLACK_WEBHOOK"][0].json["blocks"][0]["text"]["text"].split("`")[1]
    link = f"http://localhost:4200/hooked/flow-run/{ids['flow_run_id']}"

    slack, = by_type["SLACK_WEBHOOK"]
    assert slack.url == CONFIGS["SLACK_WEBHOOK"]["url"] and slack.timeout == 1.0
    assert [b["text"]["text"] for b in slack.json["blocks"]] == [
        f"Run `{run_name}` of flow `hooked` entered a new state:", "*State:* `Failed`", "*Message:* boom",
        f"*Link:* {link}"]

    texts = by_type["TWILIO"]
    assert [t.form["To"] for t in texts] == CONFIGS["TWILIO"]["to"]
    assert texts[0].url == "https://api.twilio.com/2010-04-01/Accounts/sid/Messages.json"
    assert texts[0].form["From"] == "msid" and texts[0].headers["Authorization"] == "Basic c2lkOnRva2Vu"
    assert texts[0].form["Body"] == f"Run {run_name} of flow hooked entered a new state: Failed. \n Link: {link}"

    page, = by_type["PAGERDUTY"]
    assert page.url == PAGERDUTY_URL and page.headers == {"Authorization": "Token token=pd-token"}
    assert page.json["routing_key"] == "rk" and page.json["event_action"] == "trigger"
    assert page.json["payload"]["severity"] == "info" and page.json["payload"]["class"] == "State->Failed"
    assert page.json["payload"]["custom_details"] == {"flow": "hooked", "flow_run": run_name, "state": "Failed",
                                                      "state_message": "boom", "tenant_slug": "hooked"}
    assert page.json["links"] == [{"href": link, "text": f"Flow Run {run_name}"}]


def test_test_cloud_hook_sends_a_test_event_now(receiver: Receiver) -> None:
    emu = InProcess(sender=http_sender)
    ids = emu.flow_run()
    hook = create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": receiver.url})
    answer = emu.mutate("test_cloud_hook", {"cloud_hook_id": hook, "state_type": "FAILED"}, "success error")
    assert answer == {"success": True, "error": None}
    event = receiver.bodies[0]["event"]
    assert event["is_test_event"] is True and event["state"]["state"] == "Failed"
    assert event["state"]["serialized_state"]["message"] == "Test failed state"
    assert event["tenant"] == {"id": ids["tenant_id"], "slug": "test-slug"}
    with_run = emu.mutate("test_cloud_hook", {"cloud_hook_id": hook, "flow_run_id": ids["flow_run_id"]}, "success")
    assert with_run["success"] is True
    event = receiver.bodies[1]["event"]
    assert event["flow_run"]["id"] == ids["flow_run_id"] and event["state"]["state"] == "Success"
    assert event["tenant"]["slug"] == "hooked"


def test_test_cloud_hook_answers_a_failure_as_success_false() -> None:
    emu = InProcess(sender=http_sender)
    ids = emu.flow_run()
    hook = create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": "http://127.0.0.1:9/hook"})
    answer = emu.mutate("test_cloud_hook", {"cloud_hook_id": hook}, "success error")
    assert answer == {"success": False, "error": "The hook's call failed: cannot connect."}
    unknown = emu.mutate("test_cloud_hook", {"cloud_hook_id": UNKNOWN}, "success error")
    assert unknown == {"success": False, "error": "Invalid ID"}
    no_run = emu.mutate("test_cloud_hook", {"cloud_hook_id": hook, "flow_run_id": UNKNOWN}, "success error")
    assert no_run == {"success": False, "error": f"Invalid flow run ID: {UNKNOWN} does not exist."}


def test_switched_off_hooks_are_stored_but_never_called(receiver: Receiver) -> None:
    emu = InProcess(sender=http_sender, cloud_hooks=False)
    ids = emu.flow_run()
    hook = create_hook(emu, ids["tenant_id"], "WEBHOOK", ["FAILED"], {"url": receiver.url})
    create_hook(emu, ids["tenant_id"], "PREFECT_MESSAGE", ["FAILED"], {})
    emu.set_state(ids["flow_run_id"], Failed())
    emu.hooks.join()
    answer = emu.mutate("test_cloud_hook", {"cloud_hook_id": hook}, "success error")
    assert answer["success"] is False and "--no-cloud-hooks" in answer["error"]
    assert receiver.bodies == [] and emu.data("{ message { id } }")["message"] == []


def test_the_switch_reaches_the_emulator_from_its_environment_variable(tmp_path: Path) -> None:
    # --no-cloud-hooks is the same click option; one start (a few seconds) checks the variable's way in
    with Emulator(tmp_path, extra_env={"PREFECT_EMULATOR_CLOUD_HOOKS": "false"}) as emu:
        assert "cloud_hooks=off" in emu.log()
