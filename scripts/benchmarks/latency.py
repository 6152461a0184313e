"""Goal 1: trigger to Running with an idle agent, ours (`python -m agents start`, its defaults) against
prefect's stock `prefect agent local start`, and what each polls while idle.

Each agent has its own emulator, so that each emulator's GRAPHQL log lines count one agent's requests. The
samples alternate between the two agents in a random order, each after a random idle gap (so that triggers
do not line up with either agent's poll schedule). A run is created the way the UI creates one (the
create_flow_run mutation); its latency is the API's own clock: flow run `start_time` (set when the flow
runner reports Running) minus `created`.
"""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from .orchestra import Orchestra
from .report import Row, p50_p90, percentile, progress, ratio

KINDS = ("ours", "stock")


def measure(quick: bool) -> List[Row]:
    """The rows of goal 1.

    Args:
        quick: 3 samples per agent, gaps up to 2 s, a 5 s idle window (else 20, up to 12 s, 30 s)

    Returns:
        Rows: trigger-to-Running p50/p90 per agent and the ratio; idle GraphQL requests/s per agent.
    """
    samples, max_gap, idle_window = (3, 2.0, 5.0) if quick else (20, 12.0, 30.0)
    latencies: Dict[str, List[float]] = {k: [] for k in KINDS}
    idle_rates: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        orchestras = {kind: Orchestra(Path(tmp), kind) for kind in KINDS}
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
                order = list(KINDS)
                rng.shuffle(order)
                for kind in order:
                    time.sleep(rng.uniform(0, max_gap))
                    orchestra = orchestras[kind]
                    [run_id] = orchestra.create_runs(1)
                    [run] = orchestra.wait_finished([run_id], timeout=120, poll=0.25)
                    if run["start_time"] is None:
                        raise RuntimeError(f"the {kind} agent did not start run {run_id} within 120 s")
                    latencies[kind].append((run["start_time"] - run["created"]).total_seconds())
                progress(f"latency: sample {i + 1}/{samples}: "
                         + ", ".join(f"{k} {latencies[k][-1]:.2f} s" for k in KINDS))
        finally:
            for orchestra in orchestras.values():
                orchestra.stop()
    ours, stock = (percentile(latencies[k], 50) for k in KINDS)
    return [
        Row("1", "trigger to Running, idle agent, p50 / p90", p50_p90(latencies["ours"]),
            p50_p90(latencies["stock"]), ratio(stock, ours) + " sooner", "p50 <= 1.0 s, >= 4x"),
        Row("1", "idle polling, GraphQL requests/s per agent", f"{idle_rates['ours']:.2f}/s",
            f"{idle_rates['stock']:.2f}/s", "", "<= 1/s"),
    ]
