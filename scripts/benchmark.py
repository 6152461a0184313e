#!/usr/bin/env python3
"""Prints the figures of every goal of issue 10 side by side: ours against prefect's stock where there is a
stock, with repetitions, p50 / p90, the machine's core count, load and the date. Nothing is asserted.

    .venv/bin/python scripts/benchmark.py                        # everything (about 25 min on 2 cores)
    .venv/bin/python scripts/benchmark.py --quick                # fewer samples and runs, smaller sizes
    .venv/bin/python scripts/benchmark.py --only emulator,dask   # some sections
    .venv/bin/python scripts/benchmark.py --markdown             # the table as Markdown (the README's)

Sections (scripts/benchmarks/<module>.py):
    latency   goal 1: trigger to Running with an idle agent, ours vs `prefect agent local start`, idle req/s
    burst     goal 2: 100 trivial runs at once on one agent: runs/min, create-to-Success, exactly once, processes
    emulator  goal 3: the emulator's query latency at 100 / 5,000 / 20,000 stored runs, threads, memory
    dask      goal 4: the distributed DAG on 1 and 2 Dask workers, default and large sizes
    stack     goal 5: image size, builds, cold start of the offline stack (skipped without Docker), and the
              dashboard's Quick Run click to Running in that stack (issue 17)
    dashboard issue 17: each dashboard page's p50 at 20,000 stored runs, requests/s of an open run page
Every process it starts (emulators, agents, Dask, containers) is stopped at the end, also on Ctrl-C.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

# `python scripts/benchmark.py` puts scripts/ first on sys.path, where the benchmarks package is
from benchmarks import burst, dashboard, dask_scaling, emulator_scale, history, latency, stack
from benchmarks.report import Row, print_table, progress

SECTIONS: Dict[str, Callable[[bool], List[Row]]] = {
    "latency": latency.measure,
    "burst": burst.measure,
    "emulator": emulator_scale.measure,
    "history": history.measure,
    "dask": dask_scaling.measure,
    "stack": stack.measure,
    "dashboard": dashboard.measure,
}


def parse_sections(text: str) -> List[str]:
    """The comma-separated section names of --only, checked against SECTIONS."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section(s) {', '.join(unknown) or '(none given)'}: "
                                         f"choose from {', '.join(SECTIONS)}")
    return names


def machine() -> str:
    """One line: date, cores, load average, Python and prefect versions."""
    import prefect

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"date {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, {os.cpu_count()} cores, "
            f"load average {load}, Python {platform.python_version()}, prefect {prefect.__version__}")


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=parse_sections, default=list(SECTIONS),
                        help=f"comma-separated sections to run ({', '.join(SECTIONS)}); default all")
    parser.add_argument("--quick", action="store_true", help="fewer samples and runs: a smoke test, not figures")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = parser.parse_args(argv)
    header = machine()
    rows: List[Row] = []
    failed = []
    for name in args.only:
        began = time.monotonic()
        progress(f"section {name}{' (quick)' if args.quick else ''}")
        try:
            rows += SECTIONS[name](args.quick)
        except Exception as exc:  # one broken section must not hide the others' figures
            failed.append(name)
            rows.append(Row("", f"{name}: FAILED", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
        progress(f"section {name} took {time.monotonic() - began:.0f} s")
    print(f"issue 10 benchmark{' (--quick: smoke test, few samples)' if args.quick else ''}: {header}")
    print_table(rows, markdown=args.markdown)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
