"""Faults in the compose stack (emulator as the API): agent containers killed, agent processes killed,
an agent cut off from the network, the API and the whole stack restarted. Each scenario prints its figures
and ends with no run lost and none run twice.

Figures: created, success, lost (not finished when the wait ends), duplicated (executed to its end more than
once: more than one "Flow run SUCCESS/FAILED" line from prefect's flow runner on the run), gave_up (flow-run
processes that found their run re-queued and taken, and stopped: agents.flowrun), killed_running (Running in a
container at the moment it was killed: its process died with it; Server's zombie killer or Lazarus decides
those, not our recovery), requeued and seconds to recover (from the fault until the last stranded run was
back in the queue).

The agent faults (`docker kill` of an agent-etl replica, `kill -9` of its agent process, a 30 s cut from
the network) hit a replica while it holds runs it has marked Submitted but not started; the recovery sweep
(agents.agent.recovery) must re-queue them, and each must then run once. It is the other replica's sweep, or
after `kill -9` that of the victim's restarted agent (docker's init, PID 1, exits with its child the agent,
the container restarts, and Server gives an agent of the same name its old id, so to the other replica it
polls again).

The freeze: a forked flow-run process (agents.flowrun.forkrun) moves its run to Running about 0.1 s after its
Submitted state, too short a window to hit by polling the API. So both replicas' fork servers are stopped
(SIGSTOP) before the runs are created: an agent's fork call for a run it has marked Submitted then waits for
the server in the agent's deploy thread (one per run, at most its run limit), while its polls, heartbeat,
health endpoint and recovery sweep go on, and the run stays Submitted. Once no run is Scheduled any more,
the replica holding most Submitted runs is the victim and the other one is thawed (SIGCONT). No run ever
started in the victim, so no fault kills a Running run (killed_running is 0 for all three: each kill would
take the victim's Running runs down with its container). Exactly the victim's runs must be re-queued. After
the network cut the victim's fork server is thawed: its late flow-run processes start, and each must give
its run up (agents.flowrun's ownership check), since another agent has taken it. A failed scenario still
thaws every fork server, and `up` restarts a killed replica, before the next one; every wait is bounded.

The agent-etl replicas re-queue after DAGS_STRANDED_AFTER=10 s of silence (default 30): a third of the cut,
so the re-queue happens while the victim is cut off (with 30 s it raced the reconnection: a poll in prefect's
retry back-off may keep the victim silent longer, or not); the cut is held until the re-queue should it take
longer than 30 s.

test_docker_kill_of_a_replica_holding_running_runs kills a replica while it holds Running runs too (mid-task,
with a retry left), in a stack of its own with a fast zombie killer and Lazarus: the zombie killer retries
their tasks and another replica takes them over.
"""
from __future__ import annotations

import collections
import datetime
import json
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

import pytest

from tests.faults.faults import (GAVE_UP, REQUEUED, parse_time, requeue_times, utc_now, wait_all_finished,
                                 wait_until)
from tests.faults.faults import executions as marker_counts
from tests.stack.conftest import agent_etl_override, running_stack
from tests.stack.stack import FINAL_STATES, Stack, docker

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ETL = "etl-seattle-weather"
RUNS = 8
REPLICAS = 2
STRANDED_AFTER = 10
# Sends a signal to processes of an agent container, found in /proc (the image has no pgrep):
# `python -c SIGNAL_PROCESSES agent|forkserver SIGNAME`; prints the pids. The agent is the child of docker's
# init (PID 1; `docker exec` processes have parent 0) running `python -m agents`; its fork server is its child
# running multiprocessing.forkserver (the flow runs forked from it have the same command line, but the server
# as their parent).
SIGNAL_PROCESSES = """
import os, signal, sys
procs = []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()
        ppid = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[1])
    except OSError:
        continue  # ended meanwhile
    procs.append((int(pid), ppid, cmd))
agents = [pid for pid, ppid, cmd in procs if ppid == 1 and b'\\0-m\\0agents\\0' in cmd]
targets = agents if sys.argv[1] == 'agent' else [
    pid for pid, ppid, cmd in procs if ppid in agents and b'multiprocessing.forkserver' in cmd]
for pid in targets:
    os.kill(pid, getattr(signal, sys.argv[2]))
print(*targets)
"""


@pytest.fixture(scope="module")
def stack(built_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack, with REPLICAS agent-etl replicas that re-queue after STRANDED_AFTER s (module doc)."""
    override = tmp_path_factory.mktemp("faults") / "compose.faults.yaml"
    override.write_text(f"services:\n  agent-etl:\n    environment: {{DAGS_STRANDED_AFTER: '{STRANDED_AFTER}'}}\n")
    with running_stack([override]) as stk:
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


def signal_processes(container: Dict[str, str], which: str, signame: str, check: bool = True) -> List[int]:
    """Sends `signame` to the agent ("agent") or its fork server ("forkserver") in `container`; returns their
    pids. With `check`, fails unless there was one."""
    proc = subprocess.run(["docker", "exec", container["id"], "python", "-c", SIGNAL_PROCESSES, which, signame],
                          capture_output=True, text=True, timeout=60)
    pids = [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []
    if check:
        assert len(pids) == 1, (f"expected one {which} process to send {signame} in {container['name']}, found "
                                f"{pids} (exit {proc.returncode}: {proc.stderr.strip()}); a fork server exists "
                                "unless DAGS_FLOW_RUN_FORK=0")
    return pids


def host_of(run: dict) -> str:
    """The hostname of the agent that holds (last submitted) the run: agents are named <what>@<hostname>."""
    return (run["agent"] or {}).get("name", "").split("@")[-1]


def frozen_victim(stack: Stack, ids: List[str], replicas: List[Dict[str, str]],
                  timeout: float = 60) -> Tuple[Dict[str, str], List[str]]:
    """Waits until every run is taken (none Scheduled: the frozen replicas keep theirs Submitted); returns the
    replica holding most Submitted runs and their ids."""
    deadline = time.monotonic() + timeout
    while True:
        rows = history(stack, ids)
        held: Dict[str, List[str]] = {c["hostname"]: [] for c in replicas}
        for run in rows:
            if run["state"] == "Submitted" and host_of(run) in held:
                held[host_of(run)].append(run["id"])
        host = max(held, key=lambda h: len(held[h]))
        if held[host] and len(rows) == len(ids) and all(r["state"] != "Scheduled" for r in rows):
            return next(c for c in replicas if c["hostname"] == host), held[host]
        if time.monotonic() > deadline:
            states = collections.Counter((r["state"], host_of(r)) for r in rows)
            raise AssertionError(f"the runs were not all taken, with some held Submitted by a frozen agent-etl "
                                 f"replica, within {timeout}s: (state, agent host) counts {dict(states)}")
        time.sleep(0.5)


ALREADY_FINISHED = "Flow run has already finished."  # prefect's CloudFlowRunner, on a finished run


def requeued(rows: List[dict]) -> Set[str]:
    """The runs agents.agent.recovery re-queued."""
    return {r["id"] for r in rows if any(s["state"] == "Scheduled" and REQUEUED in (s["message"] or "")
                                         for s in r["states"])}


def given_up(rows: List[dict]) -> Set[str]:
    """The runs that a late flow-run process turned away from without running them: it gave the run up to the
    newer submission, or, when it looked only once the other process had finished the run, prefect's own
    runner ended it ("Flow run has already finished."). Which of the two depends on how late it is."""
    return {r["id"] for r in rows
            if any(GAVE_UP in log["message"] or log["message"] == ALREADY_FINISHED for log in r["logs"])}


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


def agent_fault(stack: Stack, scenario: str, fault: Callable[[Dict[str, str]], None],
                heal: Optional[Callable[[Dict[str, str]], None]] = None) -> None:
    """Runs the ETL DAG RUNS times, applies `fault` to a replica holding Submitted runs that it has not started
    (module doc), waits until the recovery re-queued them, then `heal`s the victim if given (it lives on: its
    fork server is thawed after `heal`, and its late flow-run processes must give their runs up); checks
    figures. Leaves every replica thawed and the stack at its scale and healthy."""
    replicas = [c for c in stack.containers() if c["service"] == "agent-etl"]
    try:
        for replica in replicas:
            signal_processes(replica, "forkserver", "SIGSTOP")
        ids = create_etl_runs(stack, scenario)
        victim, held = frozen_victim(stack, ids, replicas)
        for replica in replicas:
            if replica is not victim:
                signal_processes(replica, "forkserver", "SIGCONT")
        fault_at = utc_now()
        fault(victim)
        wait_until(lambda: requeued(history(stack, held)) == set(held), 120,
                   f"the {len(held)} runs the victim held Submitted re-queued by the recovery", poll=1)
        if heal is not None:
            heal(victim)
            signal_processes(victim, "forkserver", "SIGCONT")
        wait_all_finished(lambda: history(stack, ids), timeout=240)
        if heal is not None:
            try:
                wait_until(lambda: given_up(history(stack, held)) == set(held), 120,
                           "the victim's late flow-run processes giving their runs up", poll=1)
            except AssertionError as exc:
                rows = [r for r in history(stack, held) if r["id"] not in given_up([r])]
                raise AssertionError(f"{exc}; not given up: {rows}\n{stack.recent_logs(80)}") from None
        rows = history(stack, ids)
        check(figures(scenario, ids, rows, fault_at))
        assert (requeued(rows), given_up(rows)) == (set(held), set(held) if heal else set()), \
            f"only the {len(held)} runs the victim held Submitted must be re-queued, and given up by it " \
            f"if it lived on: {held}"
    finally:
        for replica in replicas:  # a failed scenario leaves no fork server frozen for the next one
            signal_processes(replica, "forkserver", "SIGCONT", check=False)
        stack.up("--no-build")  # replicas back to their scale and healthy before the next scenario


def test_docker_kill_of_a_replica_holding_runs(stack: Stack) -> None:
    agent_fault(stack, "docker kill of an agent-etl replica", lambda c: docker("kill", c["id"]))


def test_kill_9_of_the_agent_process_inside_a_replica(stack: Stack) -> None:
    agent_fault(stack, "kill -9 of the agent process in a replica",
                lambda c: signal_processes(c, "agent", "SIGKILL"))


def test_replica_cut_off_from_the_network_for_30_seconds(stack: Stack) -> None:
    network = f"{stack.project}_default"
    cut_at: List[float] = []
    aliases: List[str] = []

    def cut(container: Dict[str, str]) -> None:
        networks = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}",
                                     container["id"]).stdout)
        aliases.extend(a for a in networks[network]["Aliases"] or [] if a != container["hostname"])
        docker("network", "disconnect", network, container["id"])
        cut_at.append(time.monotonic())

    def reconnect(container: Dict[str, str]) -> None:
        time.sleep(max(0.0, cut_at[0] + 30 - time.monotonic()))
        docker("network", "connect", *(f"--alias={a}" for a in aliases), network, container["id"])

    agent_fault(stack, "agent-etl replica cut off from the network for 30 s", cut, heal=reconnect)


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
    killed = killed_by_restart(stack, history(stack, list(kept)))
    after = create_etl_runs(stack, scenario + "-after")
    ids = [i for i in before if i in kept] + after
    # the killed runs stay Running (until Server's zombie killer, minutes later): no use waiting for them
    wait_all_finished(lambda: [r for r in history(stack, ids) if r["id"] not in killed], timeout=300)
    check(figures(scenario, ids, history(stack, ids), fault_at, killed))


def killed_by_restart(stack: Stack, rows: List[dict]) -> List[str]:
    """The runs still Running in a process that died with its container: their newest state is a Running
    state written before the container of the agent that submitted them last started."""
    started = {c["hostname"]: parse_time(c["started"]) for c in stack.containers()}
    return [r["id"] for r in rows if r["state"] == "Running" and host_of(r) in started
            and parse_time(r["states"][-1]["timestamp"]) < started[host_of(r)]]


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
    """The counted DAG of tests/faults (one retry, a marker per start and per end) in the agent-etl replicas,
    markers in data/output/markers (the services' uid owns data/output), each flow-run process sleeping 10 s at
    load (runs stay Submitted that long), heartbeats every 2 s, quick stranded-run recovery."""
    from tests.faults.faults import FIXTURE

    return agent_etl_override(folder, ZOMBIE_DAG, FIXTURE, {
        "DAGS_TEST_MARKERS": "/app/data/output/markers", "DAGS_TEST_LOAD_DELAY": "10",
        "PREFECT__CLOUD__HEARTBEAT_INTERVAL": "2", "DAGS_STRANDED_AFTER": "10", "DAGS_AGENT_MAX_RUNS": "8"})


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
        # wave 1: tasks that sleep 30 s on their first attempt; wave 2, once they run: runs held Submitted
        first = [stk.create_run(flow_id, {"seconds": 30}) for _ in range(4)]
        wait_until(lambda: len(held_by_any(stk, first)) == len(first), 120, "wave 1 tasks Running")
        hosts = {c["hostname"]: c for c in stk.containers() if c["service"] == "agent-etl"}
        victim = max(hosts, key=lambda h: len(held_by(stk, first, h)["Running"]))
        second = [stk.create_run(flow_id, {"seconds": 30}) for _ in range(6)]
        ids = first + second
        # Kill it when it also holds wave-2 runs Submitted, if that comes within 15 s: a victim already at its
        # run limit takes none, and a run is Submitted only until its process starts (the Submitted path is
        # also covered by the tests above). Its wave-1 runs are still mid-task then (30 s sleeps, all begun
        # before wave 2 was created).
        deadline = time.monotonic() + 15
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
