"""Goal 1: trigger to Running with an idle agent, ours (`python -m agents start`, its defaults) against
prefect's stock `prefect agent local start`, and what each polls while idle.

Each agent has its own emulator, so that each emulator's GRAPHQL log lines count one agent's requests. The
samples alternate between three cases in a random order. Each finds its agent idle: back at its longest
poll interval (prefect's backoff polls again 0.25 s after a run, then doubles: stock reaches its 10 s after
15.75 s, ours its 1.1 s after 1.75 s), and a random gap later (so that triggers do not line up with either
agent's poll schedule):
- ours and stock, a run created the way the UI creates one (the create_flow_run mutation): no one wakes the
  agent, its next poll finds the run;
- ours, a run created by `python -m agents trigger`, which pokes the agent right after creating it.
A run's latency is the API's own clock: flow run `start_time` (set when the flow runner reports Running)
minus `created`; it splits at the run's Submitted state into the poll wait (created to Submitted: the wait
for a poll, plus the poll and the submission's own requests) and the start (Submitted to Running: the
flow-run process starting, loading the flow and reporting Running).
"""
from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from .orchestra import FLOW, Orchestra, parse_time
from .report import REPO_ROOT, Row, p50_p90, percentile, progress, ratio

AGENTS = ("ours", "stock")
# sample kind -> the agent (orchestra) it runs on
CASES = {"ours": "ours", "stock": "stock", "ours-cli": "ours"}


def ramp(intervals: Dict[int, float]) -> float:
    """Seconds from a run found to the longest poll interval of a backoff (its steps before the last)."""
    steps = [intervals[k] for k in sorted(intervals)]
    return sum(s for s in steps if s < max(steps))


def create_with_cli(orchestra: Orchestra) -> str:
    """Creates a run with `python -m agents trigger` (which wakes the agents); returns its id."""
    done = subprocess.run([sys.executable, "-m", "agents", "trigger", FLOW], env=orchestra.env(),
                          cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300)
    match = re.search(r"created flow run (\S+)", done.stdout)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"python -m agents trigger {FLOW} failed:\n{done.stdout[-2000:]}")
    return match.group(1)


def split(orchestra: Orchestra, run: dict) -> Dict[str, float]:
    """The run's latency and its two parts, in seconds: total, wait (created to Submitted), start."""
    states = orchestra.query("query($id: uuid!) { flow_run_by_pk(id: $id) { states { state timestamp } } }",
                             {"id": run["id"]})["flow_run_by_pk"]["states"]
    submitted = min(parse_time(s["timestamp"]) for s in states if s["state"] == "Submitted")
    return {"total": (run["start_time"] - run["created"]).total_seconds(),
            "wait": (submitted - run["created"]).total_seconds(),
            "start": (run["start_time"] - submitted).total_seconds()}


def median(samples: List[Dict[str, float]], part: str) -> str:
    return f"{percentile([s[part] for s in samples], 50):.2f} s" if samples else "n/a"


def part_row(found: Dict[str, List[Dict[str, float]]], part: str, measure: str) -> Row:
    """One part of the latency: ours for UI-created and `trigger` runs, and stock."""
    return Row("1", measure, f"{median(found['ours'], part)} / {median(found['ours-cli'], part)}",
               median(found["stock"], part))


def measure(quick: bool) -> List[Row]:
    """The rows of goal 1.

    Args:
        quick: 3 samples per case, random gaps up to 2 s, a 5 s idle window (else 20, up to 12 s, 40 s)

    Returns:
        Rows: trigger-to-Running p50/p90 per case and the ratio to stock, the poll-wait and start medians,
        idle GraphQL requests/s per agent.
    """
    from prefect.agent.local import LocalAgent

    from agents.agent.hosting import poll_intervals
    from agents.settings import MAX_POLL_INTERVAL

    samples, max_gap, idle_window = (3, 2.0, 5.0) if quick else (20, 12.0, 40.0)
    ramps = {"ours": ramp(poll_intervals(MAX_POLL_INTERVAL.read())), "stock": ramp(LocalAgent._loop_intervals)}
    last_run = {k: 0.0 for k in AGENTS}  # when each agent's last sample ended (monotonic)
    found: Dict[str, List[Dict[str, float]]] = {k: [] for k in CASES}
    idle_rates: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        orchestras = {kind: Orchestra(Path(tmp), kind) for kind in AGENTS}
        try:
            for kind, orchestra in orchestras.items():
                orchestra.start()
                orchestra.start_agent(kind, "bench")
            progress(f"latency: idle polling over {idle_window:.0f} s")
            time.sleep(3)  # past the agents' start-up requests
            before = {k: o.graphql_requests() for k, o in orchestras.items()}
            time.sleep(idle_window)
            for kind, orchestra in orchestras.items():
                idle_rates[kind] = (orchestra.graphql_requests() - before[kind]) / idle_window
            rng = random.Random()
            for i in range(samples):
                order = list(CASES)
                rng.shuffle(order)
                for case in order:
                    agent = CASES[case]
                    time.sleep(max(0.0, last_run[agent] + ramps[agent] - time.monotonic()) + rng.uniform(0, max_gap))
                    orchestra = orchestras[agent]
                    run_id = create_with_cli(orchestra) if case == "ours-cli" else orchestra.create_runs(1)[0]
                    [run] = orchestra.wait_finished([run_id], timeout=120, poll=0.25)
                    if run["start_time"] is None:
                        raise RuntimeError(f"the {CASES[case]} agent did not start run {run_id} within 120 s")
                    found[case].append(split(orchestra, run))
                    last_run[agent] = time.monotonic()
                progress(f"latency: sample {i + 1}/{samples}: "
                         + ", ".join(f"{k} {found[k][-1]['total']:.2f} s" for k in CASES))
        finally:
            for orchestra in orchestras.values():
                orchestra.stop()
    totals = {k: [s["total"] for s in v] for k, v in found.items()}
    stock = percentile(totals["stock"], 50)
    return [
        Row("1", "trigger to Running, idle agent, run created as the UI does, p50 / p90",
            p50_p90(totals["ours"]), p50_p90(totals["stock"]),
            ratio(stock, percentile(totals["ours"], 50)) + " sooner", "p50 <= 1.0 s, >= 4x"),
        Row("1", "trigger to Running, idle agent, `python -m agents trigger` (pokes), p50 / p90",
            p50_p90(totals["ours-cli"]), "(no poke)",
            ratio(stock, percentile(totals["ours-cli"], 50)) + " sooner", ""),
        part_row(found, "wait", "  of which poll wait (created to Submitted), p50: UI-created / trigger"),
        part_row(found, "start", "  of which start (Submitted to Running), p50: UI-created / trigger"),
        Row("1", "idle polling, GraphQL requests/s per agent", f"{idle_rates['ours']:.2f}/s",
            f"{idle_rates['stock']:.2f}/s", "", "<= 1/s"),
    ]
