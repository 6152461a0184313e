"""Measures what an agent's run limit (`--limit`, DAGS_AGENT_MAX_RUNS) does to a small host.

For each limit, starts an emulator and one `python -m agents start --limit N` agent, creates RUNS runs of a
trivial DAG at once and prints: runs per minute, p50 seconds from creation to Success, the peak number of
flow-run processes of the agent alive, and the peak 1-minute load average (of the whole host: run it on a
quiet machine). Figures, no verdict: the README's default
limit was chosen from them.

    .venv/bin/python scripts/capacity_benchmark.py [--runs 60] [--limits 1,2,4,8,0]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.faults import create_runs, parse_time, registered_dag, wait_finished  # noqa: E402
from tests.processes import Emulator  # noqa: E402
from tests.runtime.conftest import start_agent  # noqa: E402


def children(pid: int) -> List[int]:
    """The live processes whose parent is `pid` (from /proc)."""
    found = []
    for each in filter(str.isdigit, os.listdir("/proc")):
        try:
            # /proc/PID/stat: "pid (name) state ppid ..."; the name may hold spaces, so split after ')'
            if int(Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(each))
        except (OSError, IndexError, ValueError):
            pass
    return found


def flow_run_processes(agent_pid: int) -> int:
    """How many flow-run processes the agent `agent_pid` has alive: its plain children, and the children of
    its multiprocessing helpers (the fork server's are forked runs; the resource tracker has none)."""
    count = 0
    for child in children(agent_pid):
        try:
            helper = b"multiprocessing" in Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        count += len(children(child)) if helper else 1
    return count


def measure(limit: int, count: int, workdir: Path) -> Dict[str, float]:
    """One limit: the figures of `count` runs on one agent."""
    peaks = {"processes": 0, "load": 0.0}
    done = threading.Event()
    agent_pid = [0]

    def sample() -> None:
        while not done.wait(0.5):
            peaks["processes"] = max(peaks["processes"], flow_run_processes(agent_pid[0]))
            peaks["load"] = max(peaks["load"], os.getloadavg()[0])

    with Emulator(workdir) as emu:
        label, env, flow = registered_dag(emu, workdir, "bench-dag")
        with start_agent(["start", "-l", label, "--name", "bench", "--limit", str(limit)], env,
                         workdir / "agent.log") as agent:
            agent_pid[0] = agent.proc.pid
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            ids = create_runs(emu, flow, count)
            rows = wait_finished(emu, ids, timeout=1800)
            minutes = (time.monotonic() - started) / 60
            done.set()
    latencies: List[float] = []
    for row in rows:
        states = row["states"]
        if row["state"] == "Success":
            latencies.append((parse_time(states[-1]["timestamp"]) - parse_time(states[0]["timestamp"])).total_seconds())
    return {"runs/min": len(latencies) / minutes, "p50 s": statistics.median(latencies) if latencies else float("nan"),
            "peak processes": peaks["processes"], "peak load": peaks["load"], "success": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="runs per limit (default 60)")
    parser.add_argument("--limits", default="1,2,4,8,0", help="comma-separated limits; 0 = no limit")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.runs} runs per limit on one agent")
    print(f"{'limit':>6} {'runs/min':>9} {'p50 s':>7} {'peak processes':>15} {'peak load':>10} {'success':>8}")
    for limit in (int(x) for x in args.limits.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            fig = measure(limit, args.runs, Path(tmp))
        print(f"{limit or 'none':>6} {fig['runs/min']:>9.0f} {fig['p50 s']:>7.1f} {fig['peak processes']:>15.0f} "
              f"{fig['peak load']:>10.1f} {fig['success']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
