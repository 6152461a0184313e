"""With --db, the emulator keeps everything across restarts, and concurrent agents never corrupt the file."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List

import pendulum
from prefect import Client
from prefect.engine.state import Running, Submitted, Success
from prefect.exceptions import ClientError

from tests.prefect_emulator.conftest import PROJECT
from tests.prefect_emulator.prefect_session import (create_tenant_and_project, prefect_session, register_flow_script,
                                            write_flow_script)
from prefect_emulator.testing import Emulator

SNAPSHOT_QUERY = """query($run: uuid!, $name: String!) {
  tenant { id name slug }
  project { id name tenant_id }
  flow(where: {name: {_eq: $name}}, order_by: {version: asc}) { id version archived flow_group_id }
  flow_run_by_pk(id: $run) {
    id name state version labels parameters
    states(order_by: {version: asc}) { state version message }
    task_runs { id state version task { slug } }
    logs(order_by: {timestamp: asc}) { message level name }
  }
}"""

HISTORY_QUERY = """query($ids: [uuid!]) {
  flow_run(where: {id: {_in: $ids}}) { id state version states { state version timestamp } }
}"""

# the agent's poll, as prefect/agent/agent.py sends it
AGENT_QUEUE_MUTATION = {
    "mutation($input: get_runs_in_queue_input!)": {"get_runs_in_queue(input: $input)": {"flow_run_ids"}}
}


def snapshot(client: Client, run_id: str, flow_name: str) -> dict:
    """Everything the test wrote, read back through GraphQL (plain dicts, comparable with ==)."""
    data = client.graphql(SNAPSHOT_QUERY, variables={"run": run_id, "name": flow_name}).data.to_dict()
    if data.get("flow_run_by_pk"):
        data["flow_run_by_pk"]["task_runs"].sort(key=lambda t: t["task"]["slug"])
    return data


def write_a_finished_run(client: Client, script: Path) -> Dict[str, str]:
    """Registers `script` twice (2 versions), runs its newest version to Success by hand, with task runs and
    logs, the way CloudFlowRunner/CloudTaskRunner report them.

    Returns:
        {"flow_id": newest version id, "run_id": the run}
    """
    register_flow_script(script, PROJECT)
    flow_id = register_flow_script(script, PROJECT)
    run_id = client.create_flow_run(flow_id=flow_id, parameters={"greeting": "kept"}, labels=["persisted"],
                                    run_name="persisted-run")
    tasks = client.graphql({"query": {'flow_by_pk(id: "%s")' % flow_id: {"tasks": {"id", "slug"}}}})
    info = client.get_flow_run_info(run_id)
    client.set_flow_run_state(run_id, Submitted(message="submitted"), version=info.version)
    client.set_flow_run_state(run_id, Running(message="running"), version=info.version + 1)
    for task in tasks.data.flow_by_pk.tasks:
        task_run = client.get_task_run_info(run_id, task.id)
        client.set_task_run_state(task_run.id, Running(message=task.slug), version=task_run.version)
        client.set_task_run_state(task_run.id, Success(message=task.slug), version=task_run.version + 1)
    now = pendulum.now("UTC")
    client.write_run_logs([
        dict(flow_run_id=run_id, name="persistence", message=f"log line {i}", level="INFO",
             timestamp=now.add(seconds=i).isoformat())
        for i in range(3)
    ])
    client.set_flow_run_state(run_id, Success(message="done"), version=info.version + 2)
    return {"flow_id": flow_id, "run_id": run_id}


def test_tenant_project_flow_run_states_and_logs_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    script = write_flow_script(tmp_path / "persisted.py", "persisted", ["persisted"])
    with Emulator(tmp_path, db=db) as emu, prefect_session(emu.url, tmp_path / "home-1") as client:
        create_tenant_and_project(client, PROJECT, tenant="persisted-tenant")
        written = write_a_finished_run(client, script)
        before = snapshot(client, written["run_id"], "persisted")

    # what was written is what the test meant to write (a snapshot of nothing would compare equal too)
    run = before["flow_run_by_pk"]
    assert [t["name"] for t in before["tenant"]] == ["persisted-tenant"]
    assert [p["name"] for p in before["project"]] == [PROJECT]
    assert [(f["version"], f["archived"]) for f in before["flow"]] == [(1, True), (2, False)]
    assert run["state"] == "Success" and run["labels"] == ["persisted"] and run["name"] == "persisted-run"
    assert run["parameters"] == {"greeting": "kept"}
    assert [s["state"] for s in run["states"]][-3:] == ["Submitted", "Running", "Success"]
    assert sorted(t["task"]["slug"] for t in run["task_runs"]) == ["greet-1", "greeting", "shout-1"]
    assert {t["state"] for t in run["task_runs"]} == {"Success"}
    assert [log["message"] for log in run["logs"]] == ["log line 0", "log line 1", "log line 2"]

    with Emulator(tmp_path, db=db) as emu, prefect_session(emu.url, tmp_path / "home-2") as client:
        assert snapshot(client, written["run_id"], "persisted") == before
        info = client.get_flow_run_info(written["run_id"])
        assert info.state.is_successful() and info.parameters == {"greeting": "kept"}
        assert info.project.name == PROJECT
        assert {t.task_slug: type(t.state).__name__ for t in info.task_runs} == {
            "greeting": "Success", "greet-1": "Success", "shout-1": "Success"}
        # and work goes on from there: the next registration is version 3 of the same flow group
        third = register_flow_script(script, PROJECT)
        flows = snapshot(client, written["run_id"], "persisted")["flow"]
        assert [(f["id"], f["version"], f["archived"]) for f in flows][-1] == (third, 3, False)
        assert len({f["flow_group_id"] for f in flows}) == 1


def test_a_run_acknowledged_before_a_hard_kill_is_still_there(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    script = write_flow_script(tmp_path / "killed.py", "killed", ["killed"])
    emu = Emulator(tmp_path, db=db).start()
    try:
        with prefect_session(emu.url, tmp_path / "home-1") as client:
            create_tenant_and_project(client, PROJECT)
            run_id = client.create_flow_run(flow_id=register_flow_script(script, PROJECT))
            client.set_flow_run_state(run_id, Submitted(message="acknowledged"))
        os.killpg(emu.proc.pid, signal.SIGKILL)  # no shutdown hook gets to flush anything
        emu.proc.wait(timeout=10)
    finally:
        emu.stop()

    with Emulator(tmp_path, db=db) as emu, prefect_session(emu.url, tmp_path / "home-2") as client:
        assert client.get_flow_run_state(run_id).is_submitted()


def test_concurrent_pollers_and_state_writers_leave_a_consistent_db(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    label = "busy-" + uuid.uuid4().hex[:8]
    script = write_flow_script(tmp_path / "busy.py", "busy", [label])
    created: List[str] = []
    won: Dict[int, List[str]] = {slot: [] for slot in range(4)}
    refused: List[str] = []
    unexpected: List[str] = []

    with Emulator(tmp_path, db=db) as emu, prefect_session(emu.url, tmp_path / "home-1") as client:
        create_tenant_and_project(client, PROJECT)
        flow_id = register_flow_script(script, PROJECT)
        tenant_id = client.tenant_id
        create_until = time.monotonic() + 5
        give_up = create_until + 90
        creating_done = threading.Event()

        def creator() -> None:
            own = Client(api_server=emu.url, tenant_id=tenant_id)
            try:
                while time.monotonic() < create_until:
                    created.append(own.create_flow_run(flow_id=flow_id))
                    time.sleep(0.05)
            except Exception as exc:
                unexpected.append(f"creator: {exc!r}")
            finally:
                creating_done.set()

        def poller(slot: int) -> None:
            # an agent in a hurry: poll, grab, run, log, finish, again, with no pause, until the queue is
            # empty after the last run was created
            own = Client(api_server=emu.url, tenant_id=tenant_id)
            while time.monotonic() < give_up:
                try:
                    done_creating = creating_done.is_set()
                    ready = own.graphql(AGENT_QUEUE_MUTATION, variables={"input": {
                        "before": pendulum.now("UTC").isoformat(), "labels": [label], "tenant_id": tenant_id,
                    }}).data.get_runs_in_queue.flow_run_ids
                    if not ready and done_creating:
                        return
                    for run_id in ready:
                        try:
                            own.set_flow_run_state(run_id, Submitted(message=f"poller {slot}"))
                        except ClientError as exc:
                            refused.append(str(exc))  # another poller got it first: expected
                            continue
                        won[slot].append(run_id)
                        own.set_flow_run_state(run_id, Running(message=f"poller {slot}"))
                        own.write_run_logs([dict(flow_run_id=run_id, name=f"poller-{slot}",
                                                 message="working", level="INFO")])
                        own.set_flow_run_state(run_id, Success(message=f"poller {slot}"))
                except Exception as exc:
                    unexpected.append(f"poller {slot}: {exc!r}")
                    return
            unexpected.append(f"poller {slot}: queue not drained after 90 s")

        threads = [threading.Thread(target=creator)] + [threading.Thread(target=poller, args=(s,)) for s in won]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert unexpected == []
    assert len(created) >= 5, f"only {len(created)} runs were created in 5 s"
    assert all("State update failed" in text for text in refused), refused
    winners = [run_id for ids in won.values() for run_id in ids]
    assert sorted(winners) == sorted(created), "each run must be taken by exactly one poller"

    with sqlite3.connect(str(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    with Emulator(tmp_path, db=db) as emu, prefect_session(emu.url, tmp_path / "home-2") as client:
        runs = client.graphql(HISTORY_QUERY, variables={"ids": created}).data.flow_run
    assert len(runs) == len(created)
    for run in runs:
        history = sorted(run.states, key=lambda s: s.version)
        versions = [s.version for s in history]
        assert len(set(versions)) == len(versions), f"{run.id}: two states share a version: {versions}"
        stamps = [pendulum.parse(s.timestamp) for s in history]
        assert stamps == sorted(stamps), f"{run.id}: state versions do not follow time: {versions}"
        assert run.version == versions[-1], f"{run.id}: run version {run.version}, states {versions}"
        assert [s.state for s in history][-3:] == ["Submitted", "Running", "Success"] and run.state == "Success"
