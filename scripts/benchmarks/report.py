"""What every section of the benchmark shares: percentiles, the rows of the side-by-side table, and the
processes a section starts (always stopped, whatever happens)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

from prefect_emulator.testing import REPO_ROOT, stop


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, nearest-rank, nan when there are none.

    Args:
        values: the samples
        q: which percentile

    Returns:
        The sample at that rank.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def p50_p90(values: Sequence[float], unit: str = "s", digits: int = 2) -> str:
    """'p50 / p90 unit (n=N)' for a list of samples."""
    if not values:
        return "n/a"
    return f"{percentile(values, 50):.{digits}f} / {percentile(values, 90):.{digits}f} {unit} (n={len(values)})"


def ratio(slow: float, fast: float) -> str:
    """'2.10x' (how many times `fast` is quicker than `slow`), '' when either is missing."""
    if not slow or not fast or math.isnan(slow) or math.isnan(fast):
        return ""
    return f"{slow / fast:.2f}x"


@dataclass
class Row:
    """One line of the side-by-side table.

    goal: the issue's goal number; measure: what is measured; ours: the project's figure; stock: prefect's
    stock figure where there is one; vs: ours against stock (or against the baseline named in the measure);
    target: the goal's figure.
    """
    goal: str
    measure: str
    ours: str
    stock: str = ""
    vs: str = ""
    target: str = ""


HEADER = Row("goal", "measure", "ours", "stock", "vs", "target")


def print_table(rows: List[Row], markdown: bool = False, out=sys.stdout) -> None:
    """Prints the rows as an aligned text table, or as a Markdown table (for the README)."""
    fields = ("goal", "measure", "ours", "stock", "vs", "target")
    lines = [[str(getattr(r, f)) for f in fields] for r in [HEADER] + rows]
    if markdown:
        for i, cells in enumerate(lines):
            print("| " + " | ".join(c.replace("|", "/") for c in cells) + " |", file=out)
            if i == 0:
                print("|" + "---|" * len(fields), file=out)
        return
    widths = [max(len(cells[i]) for cells in lines) for i in range(len(fields))]
    for cells in lines:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip(), file=out)


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


@contextmanager
def processes() -> Iterator[List[subprocess.Popen]]:
    """A list to append started processes to (each started with start_new_session=True); all are stopped,
    with their children, when the block ends, also on errors and Ctrl-C."""
    started: List[subprocess.Popen] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc)


def python_env(**extra: str) -> dict:
    """os.environ with the repository on PYTHONPATH, unbuffered output, and `extra`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def rss_mb(pid: int) -> Optional[float]:
    """Resident memory of a process in MB (from /proc), None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
