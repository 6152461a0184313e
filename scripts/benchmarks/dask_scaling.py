"""Goal 4: the distributed DAG on 1 and 2 Dask workers, at its default parameters and at a large size.

The cluster is the one compose runs, on loopback: `dask scheduler` and `dask worker --no-nanny --nthreads 1`
processes. The flow runs in a separate process (scripts/benchmarks/primes_runner.py) with
DASK_SCHEDULER_ADDRESS set, as in a flow-run process. Also measured: the same work in plain Python (no Prefect,
no Dask), and the task bodies' time on one worker with and without MALLOC_TRIM_THRESHOLD_=65536, the variable a
Nanny (LocalCluster, `dask worker` without --no-nanny) sets for its worker (distributed.nanny.pre-spawn-environ).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .report import REPO_ROOT, Row, p50_p90, percentile, processes, progress, python_env, ratio

PRIMES_DAG = REPO_ROOT / "dags" / "distributed-primes" / "distributed_primes.py"
RUNNER = Path(__file__).resolve().parent / "primes_runner.py"
LARGE = (10 ** 9, 32)
NANNY_ENV = {"MALLOC_TRIM_THRESHOLD_": "65536"}


def default_size(dag: Path) -> Tuple[int, int]:
    """The flow's default (limit, partitions), read from its Parameters."""
    from prefect.utilities.storage import extract_flow_from_file

    flow = extract_flow_from_file(file_path=str(dag))
    defaults = {p.name: p.default for p in flow.parameters()}
    return int(defaults["limit"]), int(defaults["partitions"])


def run_flow(dag: Path, size: Tuple[int, int], repetitions: int, env: Dict[str, str], workers: int = 0,
             plain: bool = False) -> List[dict]:
    """Runs primes_runner.py and returns its JSON lines (one per timed run)."""
    args = [sys.executable, str(RUNNER), str(dag), str(size[0]), str(size[1]), str(repetitions),
            "--workers", str(workers)] + (["--plain"] if plain else [])
    proc = subprocess.run(args, env=env, cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"primes_runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def on_cluster(dag: Path, sizes: List[Tuple[int, int]], workers: int, repetitions: int,
               worker_env: Optional[Dict[str, str]] = None) -> Dict[Tuple[int, int], List[dict]]:
    """Starts a scheduler and `workers` one-thread workers on 127.0.0.1, runs each size, stops them all."""
    from tests.processes import free_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    results = {}
    with processes() as started:
        started.append(subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                                "--no-dashboard"], env=python_env(), start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i in range(workers):
            started.append(subprocess.Popen(
                dask + ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"],
                env=python_env(**(worker_env or {})), start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        env = python_env(DASK_SCHEDULER_ADDRESS=address)
        for size in sizes:
            progress(f"dask: {workers} worker(s), limit {size[0]:.0e}, {size[1]} partitions"
                     f"{' with ' + str(worker_env) if worker_env else ''}")
            results[size] = run_flow(dag, size, repetitions, env, workers=workers)
    return results


def measure(quick: bool, dag: Path = PRIMES_DAG) -> List[Row]:
    """The rows of goal 4.

    Args:
        quick: fewer repetitions and a smaller "large" size
        dag: the DAG file (another revision's copy, to compare before and after)

    Returns:
        Rows: seconds per flow run on 1 and 2 workers and the speed-up, per size; the task bodies' time in a
        worker against plain Python; the effect of the Nanny's malloc setting.
    """
    repetitions = 2 if quick else 5
    default = default_size(dag)
    large = (10 ** 8, 16) if quick else LARGE
    sizes = [default, large]
    one = on_cluster(dag, sizes, 1, repetitions)
    two = on_cluster(dag, sizes, 2, repetitions)
    rows = []
    for name, size in (("default", default), ("large", large)):
        plain = run_flow(dag, size, 1 if quick else 3, python_env(), plain=True)
        walls1 = [r["wall"] for r in one[size]]
        walls2 = [r["wall"] for r in two[size]]
        label = f"{name} (limit {size[0]:.0e}, {size[1]} partitions)"
        rows.append(Row("4", f"flow run, 1 worker, {label}", p50_p90(walls1), target="-"))
        rows.append(Row("4", f"flow run, 2 workers, {label}", p50_p90(walls2),
                        vs=ratio(percentile(walls1, 50), percentile(walls2, 50)) + " vs 1 worker",
                        target=">= 1.6x default, >= 1.8x large"))
        tasks1 = [r["task_seconds"] for r in one[size]]
        plain_s = [r["wall"] for r in plain]
        rows.append(Row("4", f"task bodies in 1 worker vs plain Python, {name}", p50_p90(tasks1),
                        stock=f"plain {p50_p90(plain_s)}",
                        vs=ratio(percentile(tasks1, 50), percentile(plain_s, 50)) + " slower",
                        target="~1.0x"))
    if not quick:
        trimmed = on_cluster(dag, [large], 1, repetitions, worker_env=NANNY_ENV)[large]
        tasks1 = [r["task_seconds"] for r in one[large]]
        tasks_trim = [r["task_seconds"] for r in trimmed]
        rows.append(Row("4", "task bodies, 1 worker with the Nanny's MALLOC_TRIM_THRESHOLD_=65536, large",
                        p50_p90(tasks_trim), stock=f"without {p50_p90(tasks1)}",
                        vs=ratio(percentile(tasks_trim, 50), percentile(tasks1, 50)) + " slower", target="~1.0x"))
    return rows
