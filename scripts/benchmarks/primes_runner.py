"""Runs the distributed DAG's flow in this process and prints one JSON line per timed run (not a test).

    python scripts/benchmarks/primes_runner.py DAG_FILE LIMIT PARTITIONS REPETITIONS [--workers N] [--plain]

With DASK_SCHEDULER_ADDRESS set the flow's tasks go to that cluster (the DAG chooses its executor from the
environment, as in a flow-run process); --workers waits for that many workers first, and one small untimed run
lets the workers import prefect and the DAG's functions. --plain times count_primes over the same partitions
in this process instead (the work without Prefect or Dask). Each line: {"wall": s, "task_seconds": s}, where
task_seconds adds up the partitions' own timings (the task bodies, wherever they ran).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
import time

from prefect.utilities.storage import extract_flow_from_file


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dag")
    parser.add_argument("limit", type=int)
    parser.add_argument("partitions", type=int)
    parser.add_argument("repetitions", type=int)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--plain", action="store_true")
    args = parser.parse_args()
    if args.workers:
        from distributed import Client

        with Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout=60) as client:
            client.wait_for_workers(args.workers, timeout=120)
    with tempfile.TemporaryDirectory() as out:
        if args.plain:
            namespace = runpy.run_path(args.dag, run_name="primes_runner")
            for _ in range(args.repetitions):
                began = time.perf_counter()
                for part in namespace["plan_partitions"](args.limit, args.partitions):
                    namespace["count_primes"](part["start"], part["stop"])
                wall = time.perf_counter() - began
                print(json.dumps({"wall": wall, "task_seconds": wall}), flush=True)
            return
        flow = extract_flow_from_file(file_path=args.dag)
        params = {"output_dir": out}
        flow.run(parameters=dict(params, limit=10_000, partitions=4))  # warm-up: imports on the workers
        for _ in range(args.repetitions):
            began = time.perf_counter()
            state = flow.run(parameters=dict(params, limit=args.limit, partitions=args.partitions))
            wall = time.perf_counter() - began
            if not state.is_successful():
                sys.exit(f"the flow run failed: {state.message}")
            with open(os.path.join(out, "result.json")) as fh:
                result = json.load(fh)
            print(json.dumps({"wall": wall, "task_seconds": sum(p["seconds"] for p in result["partitions"]),
                              "workers": len(result["workers"])}), flush=True)


if __name__ == "__main__":
    main()
