"""The Prefect UI's wire format, as Server's Apollo answers it: batched bodies, CORS, `__typename`, the depth limit.

The UI (Apollo's BatchHttpLink) posts a JSON array of operations and reads an array of answers in the same
order; it runs on another origin than the API, so the browser sends a CORS preflight first.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from prefect_emulator.cors import ALLOWED_HEADERS, DEFAULT_ORIGINS
from prefect_emulator.depth import MAX_DEPTH
from prefect_emulator.server import MAX_BATCH
from prefect_emulator.testing import REPO_ROOT, Emulator

UI_ORIGIN = "http://localhost:8082"
# what a browser sends before the UI's POST: its custom headers need a preflight
PREFLIGHT = {"Origin": UI_ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "content-type,x-backend,x-prefect-ui,x-prefect-tenant-id,"
                                               "x-prefect-user-id,authorization"}


def post(emu: Emulator, body, **headers) -> requests.Response:
    return requests.post(emu.url + "/graphql", data=json.dumps(body), timeout=10,
                         headers={"Content-Type": "application/json", **headers})


def test_a_batch_is_answered_in_order_and_one_failure_fails_only_itself(module_emulator: Emulator) -> None:
    batch = [{"query": "query A { hello }", "operationName": "A"},
             {"query": "query B { no_such_field }"},
             {"query": "mutation ($input: create_tenant_input!) { create_tenant(input: $input) { id } }",
              "variables": {"input": {"name": "batched", "slug": "batched-tenant"}}},
             "not an operation",
             {"query": "query { tenant(where: {slug: {_eq: \"batched-tenant\"}}) { slug } }"}]
    resp = post(module_emulator, batch)
    assert resp.status_code == 200
    answers = resp.json()
    assert isinstance(answers, list) and len(answers) == len(batch)
    assert "errors" not in answers[0] and "hello" in answers[0]["data"]
    assert "no_such_field" in answers[1]["errors"][0]["message"]
    assert answers[2]["data"]["create_tenant"]["id"]
    assert "object" in answers[3]["errors"][0]["message"]
    assert answers[4]["data"]["tenant"] == [{"slug": "batched-tenant"}]


def test_a_batch_over_the_limit_is_refused_whole_naming_the_limit(module_emulator: Emulator) -> None:
    resp = post(module_emulator, [{"query": "{ hello }"}] * (MAX_BATCH + 1))
    assert resp.status_code == 400
    message = resp.json()["errors"][0]["message"]
    assert str(MAX_BATCH + 1) in message and str(MAX_BATCH) in message and "fewer" in message


def test_cloud_only_mutations_get_servers_error_without_failing_their_batch(module_emulator: Emulator) -> None:
    # the UI sends update_user_settings when the flows table's page size changes, send_feedback from its menu
    batch = [{"query": "mutation { update_user_settings(input: {settings: {}}) { success } }"},
             {"query": "{ hello }"},
             {"query": "mutation ($input: send_feedback_input!) { send_feedback(input: $input) { success } }",
              "variables": {"input": {"message": "hi"}}}]
    answers = post(module_emulator, batch, Origin=UI_ORIGIN).json()
    # graphql-js's wording (Server's Apollo): the field in double quotes
    assert answers[0]["errors"][0]["message"].startswith(
        'Cannot query field "update_user_settings" on type "Mutation".')
    assert "errors" not in answers[1]
    assert any('"send_feedback_input"' in e["message"] for e in answers[2]["errors"])


def test_preflight_from_a_ui_origin_allows_the_uis_headers(module_emulator: Emulator) -> None:
    resp = requests.options(module_emulator.url + "/graphql", headers=PREFLIGHT, timeout=10)
    assert resp.status_code == 204
    assert resp.headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert resp.headers["Vary"] == "Origin"
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert set(PREFLIGHT["Access-Control-Request-Headers"].split(",")) <= allowed == set(ALLOWED_HEADERS)
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]


def test_every_answer_carries_cors_headers_errors_included(module_emulator: Emulator) -> None:
    answers = [post(module_emulator, {"query": "{ hello }"}, Origin=UI_ORIGIN),
               post(module_emulator, {"query": "{ nope }"}, Origin=UI_ORIGIN),
               requests.post(module_emulator.url, data=b"{not json", headers={"Origin": UI_ORIGIN}, timeout=10),
               requests.get(module_emulator.url + "/nowhere", headers={"Origin": UI_ORIGIN}, timeout=10),
               requests.put(module_emulator.url, headers={"Origin": UI_ORIGIN}, timeout=10)]
    assert [r.status_code for r in answers] == [200, 200, 400, 404, 501]
    for resp in answers:
        assert resp.headers.get("Access-Control-Allow-Origin") == UI_ORIGIN, resp.status_code
        assert resp.headers.get("Vary") == "Origin"


def test_default_origins_are_the_ui_ports_on_loopback_names_without_a_wildcard() -> None:
    assert set(DEFAULT_ORIGINS) == {f"http://{h}:{p}" for h in ("localhost", "127.0.0.1") for p in (8080, 8082)}


def test_another_origin_is_refused_naming_the_option(module_emulator: Emulator) -> None:
    evil = "http://evil.example"
    preflight = requests.options(module_emulator.url, headers=dict(PREFLIGHT, Origin=evil), timeout=10)
    assert preflight.status_code == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "--cors-origins" in preflight.json()["errors"][0]["message"]
    # a "simple" POST needs no preflight: it must not run either
    resp = post(module_emulator, {"query": 'mutation { create_tenant(input: {name: "x", slug: "evil-made"}) '
                                           '{ id } }'}, Origin=evil)
    assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp.headers
    check = post(module_emulator, {"query": '{ tenant(where: {slug: {_eq: "evil-made"}}) { id } }'})
    assert check.json()["data"]["tenant"] == []


def test_configured_origins_replace_the_defaults(tmp_path: Path) -> None:
    with Emulator(tmp_path, extra_args=["--cors-origins", "http://ui.test:9000, http://127.0.0.1:7000"]) as emu:
        ok = requests.options(emu.url, headers=dict(PREFLIGHT, Origin="http://ui.test:9000"), timeout=10)
        default = requests.options(emu.url, headers=PREFLIGHT, timeout=10)
    assert ok.status_code == 204 and ok.headers["Access-Control-Allow-Origin"] == "http://ui.test:9000"
    assert default.status_code == 403


@pytest.mark.parametrize("setting", ["localhost:8082", "http://localhost:8082/graphql", "ftp://x"])
def test_a_bad_origin_setting_stops_start_up_naming_it(setting: str) -> None:
    result = subprocess.run([sys.executable, "-m", "prefect_emulator", "--port", "0"], cwd=REPO_ROOT,
                            env={"PREFECT_EMULATOR_CORS_ORIGINS": setting, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert setting in result.stderr and "scheme://host[:port]" in result.stderr


def test_typenames_are_hasuras_and_servers(module_emulator: Emulator) -> None:
    query = """{ __typename
      flow_run(limit: 1) { __typename }
      flow_run_aggregate { __typename aggregate { __typename count max { __typename } } }
      tenant(limit: 1) { __typename }
    }"""
    data = post(module_emulator, {"query": query}).json()["data"]
    assert data["__typename"] == "Query"  # the root of the schema Apollo stitches
    agg = data["flow_run_aggregate"]
    assert agg["__typename"] == "flow_run_aggregate"
    assert agg["aggregate"]["__typename"] == "flow_run_aggregate_fields"
    assert agg["aggregate"]["max"]["__typename"] == "flow_run_max_fields"
    mutation = "mutation { delete_message(input: {message_id: \"6f1c2a4e-9e4b-4f5e-8a1d-2b3c4d5e6f70\"}) " \
               "{ __typename success } }"
    answer = post(module_emulator, {"query": mutation}).json()["data"]["delete_message"]
    assert answer == {"__typename": "success_payload", "success": False}


def nested(levels: int) -> str:
    """A query whose deepest field is `levels` below the root field (flow -> project -> flows -> ...)."""
    names = [("project", "flows")[index % 2] for index in range(levels)]  # outermost first
    inner = "id"
    for name in reversed(names):
        inner = f"{name} {{ {inner} }}"
    return "query Deep { flow { " + inner + " } }"


def test_the_depth_limit_is_servers_seven_with_its_message(module_emulator: Emulator) -> None:
    # graphql-depth-limit counts the root field as 0: a field at depth 8 is one too many
    assert "errors" not in post(module_emulator, {"query": nested(MAX_DEPTH - 1)}).json()
    errors = post(module_emulator, {"query": nested(MAX_DEPTH)}).json()["errors"]
    assert [e["message"] for e in errors] == ["'Deep' exceeds maximum operation depth of 7"]
    # __typename does not count, nor do fragments
    fragment = nested(MAX_DEPTH - 1).replace("id", "...F __typename") + " fragment F on flow { id }"
    assert "errors" not in post(module_emulator, {"query": fragment}).json()
