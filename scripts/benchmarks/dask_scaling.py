"""Goal 4: the distributed DAG on 1 and 2 Dask workers, at its default parameters and at a large size.

The clusters are the one compose runs, on loopback: `dask scheduler` and `dask worker --no-nanny --nthreads 1`
processes with the stack's Dask settings (the DASK_* lines of env/stack.env), a 1-worker and a 2-worker cluster
side by side. The flow runs in a separate process
(scripts/benchmarks/primes_runner.py) with DASK_SCHEDULER_ADDRESS set, as in a flow-run process, alternating
between the clusters so that both see the same machine load. Also measured: the same work in plain Python
(no Prefect, no Dask), and the task bodies' time on a worker started with MALLOC_TRIM_THRESHOLD_=65536, the
variable a Nanny (LocalCluster, `dask worker` without --no-nanny) sets for its worker process
(distributed.nanny.pre-spawn-environ), against one without it.
"""
from __future__ import annotations

import json
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .report import REPO_ROOT, Row, p50_p90, percentile, processes, progress, python_env, ratio
from prefect_emulator.testing import free_port

PRIMES_DAG = REPO_ROOT / "dags" / "distributed-primes" / "distributed_primes.py"
RUNNER = Path(__file__).resolve().parent / "primes_runner.py"
LARGE = (10 ** 9, 32)
# almost no work in 32 partitions: the flow run's orchestration (prefect, Dask) alone
TINY = (10 ** 4, 32)
STACK_ENV = REPO_ROOT / "env" / "stack.env"
NANNY_ENV = {"MALLOC_TRIM_THRESHOLD_": "65536"}


def default_size(dag: Path) -> Tuple[int, int]:
    """The flow's default (limit, partitions), read from its Parameters."""
    from prefect.utilities.storage import extract_flow_from_file

    flow = extract_flow_from_file(file_path=str(dag))
    defaults = {p.name: p.default for p in flow.parameters()}
    return int(defaults["limit"]), int(defaults["partitions"])


def stack_dask_settings(path: Path = STACK_ENV) -> Dict[str, str]:
    """Dask's settings of the stack's scheduler and workers: the DASK_DISTRIBUTED__* variables of env/stack.env."""
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(path, interpolate=False).items() if k.startswith("DASK_DISTRIBUTED__")}


@contextmanager
def cluster(workers: int, worker_env: Optional[Dict[str, str]] = None) -> Iterator[str]:
    """A scheduler and `workers` one-thread workers (no nanny) on 127.0.0.1, with the stack's Dask settings and
    `worker_env`; yields its address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    quiet = dict(start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    settings = stack_dask_settings()
    with processes() as started:
        started.append(subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                                "--no-dashboard"], env=python_env(**settings), **quiet))
        for i in range(workers):
            started.append(subprocess.Popen(
                dask + ["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"],
                env=python_env(**{**settings, **(worker_env or {})}), **quiet))
        yield address


def run_flow(dag: Path, size: Tuple[int, int], repetitions: int, clusters: Dict[str, int]) -> Dict[str, List[dict]]:
    """Runs primes_runner.py on these clusters ({address: workers}; none: --plain); its lines by cluster."""
    args = [sys.executable, str(RUNNER), str(dag), str(size[0]), str(size[1]), str(repetitions)]
    args += [f"--cluster={a}={n}" for a, n in clusters.items()] if clusters else ["--plain"]
    proc = subprocess.run(args, env=python_env(), cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"primes_runner failed ({proc.returncode}): {proc.stderr[-2000:]}")
    lines: Dict[str, List[dict]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            lines.setdefault(record["cluster"], []).append(record)
    return lines


def column(records: List[dict], key: str) -> List[float]:
    return [r[key] for r in records]


def measure(quick: bool, dag: Path = PRIMES_DAG) -> List[Row]:
    """The rows of goal 4.

    Args:
        quick: fewer repetitions and a smaller "large" size, no malloc comparison
        dag: the DAG file (another revision's copy, to compare before and after)

    Returns:
        Rows: seconds per flow run on 1 and 2 workers and the speed-up, per size; the same with almost no work
        (orchestration alone); the task bodies' time in a worker against plain Python; the effect of the
        Nanny's malloc setting on the task bodies.
    """
    repetitions = 2 if quick else 5
    sizes = {"default": default_size(dag), "large": (10 ** 8, 16) if quick else LARGE}
    rows = []
    with ExitStack() as stack:
        one = stack.enter_context(cluster(1))
        two = stack.enter_context(cluster(2))
        progress(f"dask: orchestration alone, limit {TINY[0]:.0e}, {TINY[1]} partitions")
        runs = run_flow(dag, TINY, repetitions, {one: 1, two: 2})
        walls1, walls2 = column(runs[one], "wall"), column(runs[two], "wall")
        rows.append(Row("4", f"flow run with almost no work (limit {TINY[0]:.0e}, {TINY[1]} partitions), 1 / 2 "
                             f"workers; per partition on 1 worker",
                        f"{percentile(walls1, 50):.2f} / {percentile(walls2, 50):.2f} s; "
                        f"{percentile(walls1, 50) / TINY[1] * 1000:.0f} ms", target="printed"))
        for name, size in sizes.items():
            label = f"{name} (limit {size[0]:.0e}, {size[1]} partitions)"
            progress(f"dask: 1 and 2 workers, {label}")
            runs = run_flow(dag, size, repetitions, {one: 1, two: 2})
            walls1, walls2 = column(runs[one], "wall"), column(runs[two], "wall")
            plain = run_flow(dag, size, 1 if quick else 3, {})["plain"]
            rows += [
                Row("4", f"flow run, 1 worker, {label}", p50_p90(walls1)),
                Row("4", f"flow run, 2 workers, {label}", p50_p90(walls2),
                    vs=ratio(percentile(walls1, 50), percentile(walls2, 50)) + " vs 1 worker",
                    target=">= 1.6x" if name == "default" else ">= 1.8x"),
            ]
            for key, what in (("task_seconds", "wall"), ("task_cpu", "CPU")):
                worker, alone = column(runs[one], key), column(plain, key)
                rows.append(Row("4", f"task bodies' {what} time in a worker vs plain Python, {name}",
                                p50_p90(worker), stock=f"plain {p50_p90(alone)}",
                                vs=ratio(percentile(worker, 50), percentile(alone, 50)), target="~1.0x"))
        if not quick:
            progress("dask: a worker with MALLOC_TRIM_THRESHOLD_=65536 and one without, large")
            trimmed = stack.enter_context(cluster(1, NANNY_ENV))  # started now: idle, it would share the CPU
            runs = run_flow(dag, sizes["large"], repetitions, {one: 1, trimmed: 1})
            with_trim, without = column(runs[trimmed], "task_cpu"), column(runs[one], "task_cpu")
            rows.append(Row("4", "task bodies' CPU time, worker with the Nanny's MALLOC_TRIM_THRESHOLD_=65536, large",
                            p50_p90(with_trim), stock=f"without {p50_p90(without)}",
                            vs=ratio(percentile(with_trim, 50), percentile(without, 50)), target="~1.0x"))
    return rows
