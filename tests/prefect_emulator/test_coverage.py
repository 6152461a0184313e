"""Every path the prefect 1.4.1 client takes against the emulator, then a check of the emulator's own log:
no operation may have failed unless the client treats that failure as normal (allowed below, by name)."""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List

import pendulum
import pytest
from prefect.engine.state import Cancelled

from tests.prefect_emulator.agents import agent_env, start_local_agent, wait_for_flow_runs
from tests.prefect_emulator.graphql_log import parse_graphql_log
from tests.prefect_emulator.prefect_session import (flow_run_rows, prefect_session, register_flow_script,
                                            write_flow_script)
from prefect_emulator.testing import REPO_ROOT, Emulator, prefect_env, stop

PROJECT = "covered"

# (root field, a piece of the error) pairs that prefect's client expects and handles as normal flow
ALLOWED_FAILURES = [
    # Client.create_project catches "Uniqueness violation." and looks the existing project up instead
    ("create_project", "Uniqueness violation"),
    # scaled agents race for a run: the losers get Server's refusal, which Agent._deploy_flow_run recognises by
    # "State update failed" and skips (with one agent per emulator here it should not happen at all)
    ("set_flow_run_states", "State update failed: this run has already been submitted"),
]

# root fields the paths below must have used successfully: proof that each path really ran
EXPECTED_FIELDS = {
    "create_tenant", "create_project", "project", "tenant", "hello",
    "create_flow_from_compressed_string", "register_tasks", "register_edges", "flow_by_pk",
    "register_agent", "get_runs_in_queue", "flow_run", "flow_run_by_pk", "create_flow_run",
    "set_flow_run_states", "set_task_run_states", "get_or_create_task_run_info", "write_run_logs",
    "update_flow_run_heartbeat", "cancel_flow_run", "auth_info",
}


def prefect_cli(env: Dict[str, str], *args: str, timeout: float = 300) -> str:
    """Runs `python -m prefect ARGS`, failing with its output unless it exits 0; returns the output."""
    done = subprocess.run([sys.executable, "-m", "prefect", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{output}"
    return output


def failures(log: str) -> List[str]:
    """The GRAPHQL records with ok=false that ALLOWED_FAILURES does not cover, one readable line each."""
    found = []
    for record in parse_graphql_log(log):
        if record["ok"]:
            continue
        error = record["error"] or ""
        if any(field in record["fields"] and piece in error for field, piece in ALLOWED_FAILURES):
            continue
        found.append(f"operation={record['operation']!r} fields={record['fields']} error={error!r}")
    return found


def fields_used(log: str) -> set:
    """Root fields of the operations that succeeded."""
    return {field for record in parse_graphql_log(log) if record["ok"] for field in record["fields"]}


@pytest.mark.slow
def test_every_client_path_is_answered_without_unexpected_errors(tmp_path: Path) -> None:
    label = "covered-" + uuid.uuid4().hex[:8]
    key = "coverage-key-" + uuid.uuid4().hex
    (tmp_path / "cli-home").mkdir()
    with Emulator(tmp_path) as emu, Emulator(tmp_path, api_key=key) as keyed:
        env = agent_env(prefect_env(emu.url, tmp_path / "cli-home"))

        # tenant and project with the CLI, the project twice as `--skip-if-exists` allows
        prefect_cli(env, "server", "create-tenant", "--name", "Covered", "--slug", "covered")
        # (this command exits 0 even when creation fails, so its output is what tells)
        assert f"{PROJECT} created" in prefect_cli(env, "create", "project", PROJECT)
        assert "already exists" in prefect_cli(env, "create", "project", PROJECT, "--skip-if-exists")

        # registration with the CLI
        cli_script = write_flow_script(tmp_path / "cli_flow.py", "covered-cli", [label])
        prefect_cli(env, "register", "--project", PROJECT, "--path", str(cli_script))

        agent = start_local_agent(env, [label], tmp_path / "agent.log")
        try:
            with prefect_session(emu.url, tmp_path / "home") as client:
                # the Client's own paths: project again (handled uniqueness error), Flow.register twice
                # with one idempotency key (one version), runs created, read, cancelled
                client.create_project(PROJECT)
                api_script = write_flow_script(tmp_path / "api_flow.py", "covered-api", [label])
                flow_id = register_flow_script(api_script, PROJECT, idempotency_key="v1", no_url=False)
                assert register_flow_script(api_script, PROJECT, idempotency_key="v1") == flow_id
                later = client.create_flow_run(flow_id=flow_id,
                                               scheduled_start_time=pendulum.now("UTC").add(hours=1))
                info = client.get_flow_run_info(later)
                assert info.state.is_scheduled() and info.project.name == PROJECT
                client.cancel_flow_run(later)
                assert isinstance(client.get_flow_run_state(later), Cancelled)

                # agent polling and a flow run to Success
                run_id = client.create_flow_run(flow_id=flow_id, parameters={"greeting": "from the client"})
                wait_for_flow_runs(client, [run_id], timeout=180, agents=[agent])
                assert flow_run_rows(client, [run_id])[run_id]["state"] == "Success"

            # `prefect run --watch`: finds the flow by name, creates the run, streams states and logs
            watched = prefect_cli(env, "run", "--name", "covered-cli", "--project", PROJECT,
                                  "--param", "greeting=watched", "--watch")
            assert re.search(r"Success", watched), watched
            assert "greeting=watched" in watched, "the run's logs were not streamed back"
            assert "covered-cli" in prefect_cli(env, "get", "flows", "--project", PROJECT)
            assert "Success" in prefect_cli(env, "get", "flow-runs")
        finally:
            stop(agent)

        # API-key paths against the keyed emulator: login, then a command that uses the saved key
        keyed_home = tmp_path / "keyed-home"
        keyed_home.mkdir()
        auth = {"Authorization": f"Bearer {key}"}
        if not (keyed.graphql("query { auth_info { tenant_id } }", headers=auth).get("data") or {}).get("auth_info"):
            keyed.graphql('mutation { create_tenant(input: {name: "keyed", slug: "keyed"}) { id } }', headers=auth)
        keyed_env = agent_env(prefect_env(keyed.url, keyed_home, PREFECT__BACKEND="cloud"))
        assert "Logged in" in prefect_cli(keyed_env, "auth", "login", "--key", key)
        # from here on every command reads the key `auth login` saved, as on a user's machine
        assert "keyed-project created" in prefect_cli(keyed_env, "create", "project", "keyed-project")
        keyed_script = write_flow_script(tmp_path / "keyed_flow.py", "covered-keyed", [label])
        prefect_cli(keyed_env, "register", "--project", "keyed-project", "--path", str(keyed_script))
        keyed_agent = start_local_agent(keyed_env, [label], tmp_path / "keyed-agent.log")
        try:
            watched = prefect_cli(keyed_env, "run", "--name", "covered-keyed", "--project", "keyed-project",
                                  "--watch")
            assert "Flow run succeeded" in watched, watched
        finally:
            stop(keyed_agent)
        # tenants as a Cloud user sees them: list, switch, and work in the other one
        keyed.graphql('mutation { create_tenant(input: {name: "Other", slug: "other"}) { id } }', headers=auth)
        assert "other" in prefect_cli(keyed_env, "auth", "list-tenants")
        assert "Tenant switched" in prefect_cli(keyed_env, "auth", "switch-tenants", "--slug", "other")
        assert "in-other created" in prefect_cli(keyed_env, "create", "project", "in-other")
        assert "API key" in prefect_cli(keyed_env, "auth", "status")
        placed = keyed.graphql('query { project(where: {name: {_eq: "in-other"}}) { tenant { slug } } }',
                               headers=auth)["data"]["project"]
        assert placed == [{"tenant": {"slug": "other"}}], placed

        logs = {"emulator": emu.log(), "keyed emulator": keyed.log()}

    unexpected = [f"{name}: {line}" for name, log in logs.items() for line in failures(log)]
    assert not unexpected, "operations the emulator failed:\n" + "\n".join(unexpected)
    missing = EXPECTED_FIELDS - fields_used(logs["emulator"]) - fields_used(logs["keyed emulator"])
    assert not missing, f"paths that never reached the emulator successfully: {sorted(missing)}"


def test_log_check_reports_failed_operations_and_lets_only_the_allowed_ones_pass() -> None:
    # the check above is only as good as this parser: feed it the documented line format
    log = "\n".join([
        "EMULATOR listening on http://127.0.0.1:1",
        'GRAPHQL {"operation": null, "fields": ["hello"], "ok": true, "error": null, "ms": 1.0}',
        'GRAPHQL {"operation": "Q", "fields": ["flow_run"], "ok": false, '
        '"error": "Cannot query field \'nope\' on type \'flow_run\'.", "ms": 1.0}',
        'GRAPHQL {"operation": null, "fields": ["create_project"], "ok": false, '
        '"error": "Uniqueness violation.", "ms": 1.0}',
    ])
    assert failures(log) == ["operation='Q' fields=['flow_run'] error=\"Cannot query field 'nope' on type "
                             "'flow_run'.\""]
    assert fields_used(log) == {"hello"}
    with pytest.raises(AssertionError, match="not JSON"):
        parse_graphql_log('GRAPHQL {"operation": nul')
    with pytest.raises(AssertionError, match="lacks"):
        parse_graphql_log('GRAPHQL {"operation": null}')
