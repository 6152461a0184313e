"""Goal 2: a burst of trivial runs on one host agent: ours (flow runs forked from its pre-imported fork
server, agents.flowrun.forkrun), ours with DAGS_FLOW_RUN_FORK=0 (a plain `python -m agents.flowrun` per run), and
prefect's stock LocalAgent.

All runs are created at once; figures: runs per minute (first created to last finished), create-to-Success
p50/p90, exactly once (each run's marker file has one line: the DAG executed once), the most processes
alive under the agent at any moment (sampled every 0.2 s from /proc), the CPU-seconds per run used by the
agent and every process under it (their flow runs and heartbeat processes; not the API's), and the 1-minute
load average when the burst ended. Our agent gets its capacity limit (`--limit`) when
`python -m agents start --help` offers one.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

from .orchestra import Orchestra, cpu_seconds, descendants
from .report import REPO_ROOT, Row, p50_p90, progress, ratio

# the capacity limit given to our agent when it has one: a couple of runs per core
LIMIT = max(2, 2 * (os.cpu_count() or 1))


def limit_option() -> Optional[List[str]]:
    """["--limit", N] when our agent's CLI offers --limit, else None."""
    helped = subprocess.run([sys.executable, "-m", "agents", "start", "--help"], cwd=str(REPO_ROOT),
                            capture_output=True, text=True, timeout=120)
    return ["--limit", str(LIMIT)] if "--limit" in helped.stdout else None


# the agents compared: name -> (kind, environment)
AGENTS = {"ours": ("ours", {}), "ours-nofork": ("ours", {"DAGS_FLOW_RUN_FORK": "0"}), "stock": ("stock", {})}


def one_burst(workdir: Path, name: str, count: int, extra_args: Optional[List[str]]) -> Dict[str, object]:
    """Runs `count` runs at once on one agent (AGENTS[name]); returns its figures."""
    kind, extra_env = AGENTS[name]
    with Orchestra(workdir, name) as orchestra:
        agent = orchestra.start_agent(kind, "bench", extra_args, extra_env)
        time.sleep(2)  # our fork server starts with the agent: not part of the burst
        idle = len(descendants(agent.pid))
        cpu_before = cpu_seconds(agent.pid)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], len(descendants(agent.pid)))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        progress(f"burst: {count} runs on the {name} agent")
        ids = orchestra.create_runs(count)
        runs = orchestra.wait_finished(ids, timeout=60 + 6 * count)
        done.set()
        sampler.join()
        load = os.getloadavg()[0]
        deadline = time.monotonic() + 15  # the last runs' processes exit after their Success
        while len(descendants(agent.pid)) > idle and time.monotonic() < deadline:
            time.sleep(0.2)
        cpu = cpu_seconds(agent.pid) - cpu_before
        finished = [r for r in runs if r["state"] == "Success"]
        executions = [orchestra.executions(i) for i in ids]
        span = (max(r["end_time"] for r in finished) - min(r["created"] for r in runs)).total_seconds() \
            if finished else float("nan")
        return {
            "runs_per_min": len(finished) / span * 60 if finished else 0.0,
            "latencies": [(r["end_time"] - r["created"]).total_seconds() for r in finished],
            "success": len(finished),
            "once": sum(1 for n in executions if n == 1),
            "more": sum(1 for n in executions if n > 1),
            "peak": peak[0],
            "cpu_per_run": cpu / count,
            "load": load,
        }


def measure(quick: bool) -> List[Row]:
    """The rows of goal 2 (10 runs when quick, else 100): ours (forked runs) against stock, then ours
    without forking against stock."""
    count = 10 if quick else 100
    limit = limit_option()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        for name, (kind, _) in AGENTS.items():
            figures[name] = one_burst(Path(tmp), name, count, limit if kind == "ours" else None)
    stock = figures["stock"]
    label = f"--limit {LIMIT}" if limit else "no --limit in this version"
    rows = []
    for name, title in (("ours", f"ours: forked runs, {label}"), ("ours-nofork", "ours: DAGS_FLOW_RUN_FORK=0")):
        ours = figures[name]
        rows += [
            Row("2", f"burst of {count} trivial runs, runs/min ({title})", f"{ours['runs_per_min']:.0f}",
                f"{stock['runs_per_min']:.0f}", ratio(ours["runs_per_min"], stock["runs_per_min"]),  # ours/stock
                ">= 250 with the limit on"),
            Row("2", f"burst ({name}): create to Success p50 / p90", p50_p90(ours["latencies"]),
                p50_p90(stock["latencies"]), "", "p90 reported"),
            Row("2", f"burst ({name}): runs Success / executed exactly once / more than once",
                f"{ours['success']} / {ours['once']} / {ours['more']}",
                f"{stock['success']} / {stock['once']} / {stock['more']}", "", f"{count} / {count} / 0"),
            Row("2", f"burst ({name}): peak processes under the agent", str(ours["peak"]), str(stock["peak"]), "",
                "bounded by the limit"),
            Row("2", f"burst ({name}): CPU-seconds per run, agent and its processes",
                f"{ours['cpu_per_run']:.2f}", f"{stock['cpu_per_run']:.2f}",
                ratio(stock["cpu_per_run"], ours["cpu_per_run"]), "lower"),
            Row("2", f"burst ({name}): 1-min load average when it ended", f"{ours['load']:.1f}",
                f"{stock['load']:.1f}", "", "(shared host: context)"),
        ]
    return rows
