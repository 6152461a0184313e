"""Goal 2: a burst of trivial runs on one host agent, ours against prefect's stock LocalAgent.

All runs are created at once; figures: runs per minute (first created to last finished), create-to-Success
p50/p90, exactly once (each run's marker file has one line: the DAG executed once), and the most processes
alive under the agent at any moment (sampled every 0.2 s from /proc). Our agent gets its capacity limit
(`--limit`) when `python -m agents start --help` offers one.
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

from .orchestra import Orchestra, descendants
from .report import REPO_ROOT, Row, p50_p90, progress

# the capacity limit given to our agent when it has one: a couple of runs per core
LIMIT = max(2, 2 * (os.cpu_count() or 1))


def limit_option() -> Optional[List[str]]:
    """["--limit", N] when our agent's CLI offers --limit, else None."""
    helped = subprocess.run([sys.executable, "-m", "agents", "start", "--help"], cwd=str(REPO_ROOT),
                            capture_output=True, text=True, timeout=120)
    return ["--limit", str(LIMIT)] if "--limit" in helped.stdout else None


def one_burst(workdir: Path, kind: str, count: int, extra_args: Optional[List[str]]) -> Dict[str, object]:
    """Runs `count` runs at once on one agent of this kind; returns its figures."""
    with Orchestra(workdir, kind) as orchestra:
        agent = orchestra.start_agent(kind, "bench", extra_args)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], len(descendants(agent.pid)))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        progress(f"burst: {count} runs on the {kind} agent")
        ids = orchestra.create_runs(count)
        runs = orchestra.wait_finished(ids, timeout=60 + 6 * count)
        done.set()
        sampler.join()
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
        }


def measure(quick: bool) -> List[Row]:
    """The rows of goal 2 (10 runs when quick, else 100)."""
    count = 10 if quick else 100
    limit = limit_option()
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        for kind in ("ours", "stock"):
            figures[kind] = one_burst(Path(tmp), kind, count, limit if kind == "ours" else None)
    ours, stock = figures["ours"], figures["stock"]
    label = f"--limit {LIMIT}" if limit else "no --limit in this version"
    return [
        Row("2", f"burst of {count} trivial runs, runs/min (ours: {label})", f"{ours['runs_per_min']:.0f}",
            f"{stock['runs_per_min']:.0f}", "", ">= 250 with the limit on"),
        Row("2", "burst: create to Success p50 / p90", p50_p90(ours["latencies"]), p50_p90(stock["latencies"]),
            "", "p90 reported"),
        Row("2", "burst: runs Success / executed exactly once / more than once",
            f"{ours['success']} / {ours['once']} / {ours['more']}",
            f"{stock['success']} / {stock['once']} / {stock['more']}", "", f"{count} / {count} / 0"),
        Row("2", "burst: peak processes under the agent", str(ours["peak"]), str(stock["peak"]), "",
            "bounded by the limit"),
    ]
