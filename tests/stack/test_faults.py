"""Faults in the compose stack (emulator as the API): agent containers killed, agent processes killed,
an agent cut off from the network, the API and the whole stack restarted. Each scenario prints its figures
and ends with no run lost and none run twice.

Figures: created, success, lost (not finished when the wait ends), duplicated (executed to its end more than
once: more than one "Flow run SUCCESS/FAILED" line from prefect's flow runner on the run), gave_up (flow-run
processes that found their run re-queued and taken, and stopped: agents.flowrun), killed_running (Running in a container at the moment it was
killed: its process died with it; Server's zombie killer or Lazarus decides those, not our recovery),
requeued and seconds to recover (from the fault until the last stranded run was back in the queue).

test_docker_kill_of_a_replica_holding_running_runs kills a replica while it holds Running runs too (mid-task,
with a retry left), in a stack of its own with a fast zombie killer and Lazarus: the zombie killer retries
their tasks and another replica takes them over.
"""
from __future__ import annotations

import datetime
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from tests.faults.faults import GAVE_UP, requeue_times, utc_now, wait_all_finished, wait_until
from tests.faults.faults import executions as marker_counts
from tests.stack.conftest import running_stack
from tests.stack.stack import FINAL_STATES, Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ETL = "etl-seattle-weather"
RUNS = 8
REPLICAS = 2


@pytest.fixture(scope="module")
def stack(built_image: str):
    with running_stack() as stk:
        stk.up("--no-build", scales={"agent-etl": REPLICAS})
        yield stk


def history(stack: Stack, ids: List[str]) -> List[dict]:
    """Runs with state, agent (name), states with time and message."""
    return stack.graphql(
        "query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) { id state agent { name } "
        "states(order_by: {timestamp: asc}) { state timestamp message } logs { message } } }",
        {"ids": ids})["flow_run"]


def create_etl_runs(stack: Stack, scenario: str, count: int = RUNS) -> List[str]:
    flow_id = stack.latest_flow_id(ETL)
    return [stack.create_run(flow_id, {"output_dir": f"{stack.output_dir}/{scenario}/{i}"}) for i in range(count)]


def pick_victim(stack: Stack, ids: List[str], timeout: float = 90) -> Dict[str, str]:
    """An agent-etl container that holds Submitted runs, preferably none Running yet (those would die with
    it); waits for one up to `timeout` s. Returns the container (docker inspect summary)."""
    containers = {c["hostname"]: c for c in stack.containers() if c["service"] == "agent-etl"}
    deadline = time.monotonic() + timeout
    best = None
    while time.monotonic() < deadline:
        held: Dict[str, Dict[str, int]] = {}
        for run in history(stack, ids):
            host = (run["agent"] or {}).get("name", "").split("@")[-1]
            if host in containers and run["state"] in ("Submitted", "Running"):
                held.setdefault(host, {"Submitted": 0, "Running": 0})[run["state"]] += 1
        for host, counts in held.items():
            if counts["Submitted"] and not counts["Running"]:
                return containers[host]
            if counts["Submitted"] and best is None:
                best = containers[host]
        time.sleep(0.2)
    if best is None:
        raise AssertionError(f"no agent-etl replica held a Submitted run within {timeout}s")
    return best


def running_on(stack: Stack, ids: List[str], container: Dict[str, str]) -> List[str]:
    return [r["id"] for r in history(stack, ids)
            if r["state"] == "Running" and (r["agent"] or {}).get("name", "").endswith("@" + container["hostname"])]


def figures(scenario: str, ids: List[str], rows: List[dict], fault_at: Optional[datetime.datetime] = None,
            killed_running: List[str] = ()) -> Dict[str, object]:
    back = requeue_times(rows)
    unfinished = [r["id"] for r in rows if r["state"] not in FINAL_STATES]
    result = {
        "created": len(ids),
        "success": sum(r["state"] == "Success" for r in rows),
        "lost": len([i for i in unfinished if i not in killed_running]) + len(set(ids) - {r["id"] for r in rows}),
        "duplicated": sum(1 for r in rows if executions(r) > 1),
        "gave_up": sum(1 for r in rows for log in r["logs"] if GAVE_UP in log["message"]),
        "killed_running": len(killed_running),
        "requeued": len(back),
        "seconds_to_recover": round((max(back) - fault_at).total_seconds(), 1) if back and fault_at else None,
    }
    print(f"\nFAULT {scenario} (stack): " + ", ".join(f"{k}={v}" for k, v in result.items()))
    return result


def executions(run: dict) -> int:
    """How many flow-run processes ran this run to its end: prefect's flow runner logs one final line each."""
    return sum(1 for log in run["logs"] if log["message"].startswith(("Flow run SUCCESS", "Flow run FAILED")))


def check(result: Dict[str, object]) -> None:
    assert (result["lost"], result["duplicated"]) == (0, 0), result
    assert result["success"] == result["created"] - result["killed_running"], result


def agent_fault(stack: Stack, scenario: str, fault: Callable[[Dict[str, str]], None]) -> None:
    """Runs the ETL DAG RUNS times, applies `fault` to a replica holding Submitted runs, checks figures."""
    ids = create_etl_runs(stack, scenario)
    victim = pick_victim(stack, ids)
    killed_running = running_on(stack, ids, victim)
    fault_at = utc_now()
    fault(victim)
    rows = wait_all_finished(lambda: history(stack, ids), timeout=240)
    check(figures(scenario, ids, rows, fault_at, killed_running))
    stack.up("--no-build")  # replicas back to their scale and healthy before the next scenario


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=True)


def test_docker_kill_of_a_replica_holding_runs(stack: Stack) -> None:
    agent_fault(stack, "docker kill of an agent-etl replica", lambda c: docker("kill", c["id"]))


def test_kill_9_of_the_agent_process_inside_a_replica(stack: Stack) -> None:
    # tini is PID 1; the agent is its child: find it by its command line (the image has no pgrep)
    killer = ("import os, signal\n"
              "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
              "    cmd = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
              "    if b'agents' in cmd and b'start' in cmd:\n"
              "        os.kill(int(pid), signal.SIGKILL)\n")
    agent_fault(stack, "kill -9 of the agent process in a replica",
                lambda c: docker("exec", c["id"], "python", "-c", killer))


def test_replica_cut_off_from_the_network_for_30_seconds(stack: Stack) -> None:
    network = f"{stack.project}_default"

    def cut(container: Dict[str, str]) -> None:
        docker("network", "disconnect", network, container["id"])
        time.sleep(30)
        docker("network", "connect", "--alias", "agent-etl", network, container["id"])

    agent_fault(stack, "agent-etl replica cut off from the network for 30 s", cut)


def restart_and_rerun(stack: Stack, scenario: str, restart: Callable[[], None]) -> None:
    """Runs RUNS ETL runs across a restart; an API that lost its data gets init and register again (as
    compose's init and dag services do); then RUNS more runs. Checks figures of all runs the API kept."""
    before = create_etl_runs(stack, scenario + "-before")
    time.sleep(3)  # some Submitted or Running when the restart hits
    fault_at = utc_now()
    restart()
    started = time.monotonic()
    kept = {r["id"] for r in stack.graphql("query($ids: [uuid!]) { flow_run(where: {id: {_in: $ids}}) { id } }",
                                           {"ids": before})["flow_run"]} if api_up(stack) else set()
    if not stack.flows():
        assert stack.exec("agent-etl", "python", "-m", "agents", "init").returncode == 0
        assert stack.exec("agent-etl", "python", "-m", "agents", "register").returncode == 0
    stack.up("--no-build")  # every agent healthy: polling the API again
    print(f"stack healthy {time.monotonic() - started:.0f}s after the restart; runs kept by the API: {len(kept)}")
    after = create_etl_runs(stack, scenario + "-after")
    ids = [i for i in before if i in kept] + after
    rows = wait_all_finished(lambda: history(stack, ids), timeout=300)
    killed = [r["id"] for r in rows if r["id"] in kept and r["state"] == "Running"]
    check(figures(scenario, ids, rows, fault_at, killed))


def api_up(stack: Stack, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stack.graphql("{ hello }")
            return True
        except Exception:
            time.sleep(1)
    return False


def test_restart_of_the_emulator(stack: Stack) -> None:
    restart_and_rerun(stack, "docker compose restart emulator",
                      lambda: stack.run("restart", "emulator", timeout=180))


def test_restart_of_the_whole_stack(stack: Stack) -> None:
    restart_and_rerun(stack, "docker compose restart", lambda: stack.run("restart", "--timeout", "5", timeout=300))


# --- runs Running in a killed replica ---------------------------------------------------------------------
ZOMBIE_DAG = "zombie-test"
ZOMBIE_RETRY = "No heartbeat detected from the remote task; retrying the run."
# the emulator as Server's towel services, made fast: a task whose run is 12 s silent is retried (its flow-run
# processes heartbeat every 2 s), Lazarus every 5 s for runs 20 s silent with nothing due
ZOMBIE_ENV = {"EMULATOR_HEARTBEAT_TIMEOUT": "12", "EMULATOR_LAZARUS_INTERVAL": "5",
              "EMULATOR_LAZARUS_STALE_AFTER": "20"}
TASKS = "query($ids: [uuid!]) { task_run(where: {flow_run_id: {_in: $ids}}) { flow_run_id state } }"


def zombie_override(folder: Path) -> Path:
    """A compose override: the counted DAG of tests/faults (one retry, a marker per start and per end) mounted
    into the agent-etl replicas under the label `etl`, markers in data/output/markers (the services' uid owns
    data/output), each flow-run process
    sleeping 15 s at load (runs stay Submitted that long), heartbeats every 2 s, quick stranded-run recovery."""
    from tests.faults.faults import FIXTURE
    from tests.runtime.conftest import write_plain_dag

    dag = write_plain_dag(folder / "dags", ZOMBIE_DAG, ["etl"], fixture=FIXTURE).parent
    for path in (folder, folder / "dags", dag, *dag.iterdir()):
        path.chmod(0o755)  # the services' uid (5678 under root) reads it
    override = folder / "compose.zombie.yaml"
    override.write_text(
        "services:\n  agent-etl:\n"
        f"    volumes: ['{dag}:/app/dags/{ZOMBIE_DAG}:ro']\n"
        "    environment: {DAGS_TEST_MARKERS: /app/data/output/markers, DAGS_TEST_LOAD_DELAY: '15',\n"
        "                  PREFECT__CLOUD__HEARTBEAT_INTERVAL: '2', DAGS_STRANDED_AFTER: '10',\n"
        "                  DAGS_AGENT_MAX_RUNS: '8'}\n")
    return override


def held_by(stack: Stack, ids: List[str], hostname: str) -> Dict[str, List[str]]:
    """State -> ids of the runs the replica `hostname` holds; "Running" only counts runs whose task runs."""
    busy = {t["flow_run_id"] for t in stack.graphql(TASKS, {"ids": ids})["task_run"] if t["state"] == "Running"}
    held: Dict[str, List[str]] = {"Submitted": [], "Running": []}
    for run in history(stack, ids):
        if (run["agent"] or {}).get("name", "").endswith("@" + hostname) and run["state"] in held:
            if run["state"] == "Submitted" or run["id"] in busy:
                held[run["state"]].append(run["id"])
    return held


def test_docker_kill_of_a_replica_holding_running_runs(built_image: str, tmp_path: Path) -> None:
    with running_stack([zombie_override(tmp_path)], services=["agent-etl"], extra_env=ZOMBIE_ENV) as stk:
        stk.up("--no-build", "agent-etl", scales={"agent-etl": REPLICAS})
        assert stk.exec("agent-etl", "python", "-m", "agents", "register", ZOMBIE_DAG).returncode == 0
        flow_id = stk.latest_flow_id(ZOMBIE_DAG)
        # wave 1: tasks that sleep 40 s on their first attempt; wave 2, once they run: runs held Submitted
        first = [stk.create_run(flow_id, {"seconds": 40}) for _ in range(4)]
        wait_until(lambda: len(held_by_any(stk, first)) == len(first), 120, "wave 1 tasks Running")
        hosts = {c["hostname"]: c for c in stk.containers() if c["service"] == "agent-etl"}
        victim = max(hosts, key=lambda h: len(held_by(stk, first, h)["Running"]))
        second = [stk.create_run(flow_id, {"seconds": 40}) for _ in range(6)]
        ids = first + second
        # Kill it when it also holds wave-2 runs Submitted, if that comes within 30 s: a victim already at its
        # run limit takes none, and a run is Submitted only until its process starts (the Submitted path is
        # also covered by the tests above). Its wave-1 runs are still mid-task then (40 s sleeps).
        deadline = time.monotonic() + 30
        while not held_by(stk, second, victim)["Submitted"] and time.monotonic() < deadline:
            time.sleep(0.25)
        at_kill = held_by(stk, ids, victim)
        assert at_kill["Running"], f"the victim {victim} holds no Running run at the kill: {at_kill}"
        started = time.monotonic()
        docker("kill", hosts[victim]["id"])
        rows = wait_all_finished(lambda: history(stk, ids), timeout=180)
        took = time.monotonic() - started
        done = marker_counts(stk.data_dir / "output" / "markers" / "done")
    result = zombie_figures(ids, rows, at_kill, victim, done, took)
    assert (result["lost"], result["duplicated"], result["failed"]) == (0, 0, 0), result
    assert result["success"] == result["created"], result
    by_id = {r["id"]: r for r in rows}
    for run_id in at_kill["Running"]:
        logs = [log["message"] for log in by_id[run_id]["logs"]]
        assert any(m.startswith(ZOMBIE_RETRY) for m in logs), logs
        assert not by_id[run_id]["agent"]["name"].endswith("@" + victim)
    for run_id in at_kill["Submitted"]:
        assert [s["state"] for s in by_id[run_id]["states"]].count("Scheduled") >= 2, by_id[run_id]["states"]
    assert all(done.get(i) == 1 for i in ids), f"each task body must end exactly once: {done}"


def held_by_any(stack: Stack, ids: List[str]) -> List[str]:
    """The runs among `ids` whose task runs now."""
    return [t["flow_run_id"] for t in stack.graphql(TASKS, {"ids": ids})["task_run"] if t["state"] == "Running"]


def zombie_figures(ids: List[str], rows: List[dict], at_kill: Dict[str, List[str]], victim: str,
                   done: Dict[str, int], took: float) -> Dict[str, object]:
    """Prints and returns the figures of the Running-runs scenario."""
    logs = {r["id"]: [log["message"] for log in r["logs"]] for r in rows}
    result = {
        "created": len(ids),
        "success": sum(r["state"] == "Success" for r in rows),
        "failed": sum(r["state"] == "Failed" for r in rows),
        "lost": sum(r["state"] not in FINAL_STATES for r in rows) + len(set(ids) - {r["id"] for r in rows}),
        "duplicated": sum(1 for i in ids if done.get(i, 0) > 1) + sum(1 for r in rows if executions(r) > 1),
        "submitted_at_kill": len(at_kill["Submitted"]),
        "running_at_kill": len(at_kill["Running"]),
        "requeued_by_agents": len(requeue_times(rows)),
        "retried_by_zombie_killer": sum(any(m.startswith(ZOMBIE_RETRY) for m in logs[i]) for i in logs),
        "rescheduled_by_lazarus": sum(any("Lazarus" in m for m in logs[i]) for i in logs),
        "seconds_to_recover": round(took, 1),
    }
    print(f"\nFAULT docker kill of an agent-etl replica holding Running runs (stack, victim {victim}): "
          + ", ".join(f"{k}={v}" for k, v in result.items()))
    return result
