"""scripts/benchmark.py runs and prints its figures (smoke test of the cheap sections; nothing is timed)."""
from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
from types import ModuleType

from prefect_emulator.testing import REPO_ROOT

NUMBER = r"\d+(\.\d+)?"


def load_report() -> ModuleType:
    """scripts/benchmarks/report.py as a module (scripts/ is a folder of tools, not an importable package)."""
    spec = importlib.util.spec_from_file_location("benchmark_report", REPO_ROOT / "scripts" / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there (importlib's own recipe)
    spec.loader.exec_module(module)
    return module


def benchmark(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "benchmark.py")] + list(args),
                          cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=600)


def test_quick_emulator_section_prints_its_figures_with_the_machine():
    done = benchmark("--quick", "--only", "emulator")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"\d+ cores, load average", out), out
    assert re.search(r"date \d{4}-\d\d-\d\d", out), out
    assert re.search(r"^goal\s+measure\s+ours\s+stock\s+vs\s+target", out, re.M), out
    for measure in ("agent queue poll (get_runs_in_queue)", "flow_run(where: {id: {_eq}})", "UI page",
                    "flow_run_aggregate count"):
        line = next((l for l in out.splitlines() if measure in l), None)
        assert line is not None, f"no row for {measure}:\n{out}"
        assert re.search(rf"{NUMBER} / {NUMBER}\s", line), f"no p50 at two sizes in: {line}"
    assert re.search(rf"1 / 4 client threads\s+{NUMBER} / {NUMBER}", out), out
    assert re.search(rf"RSS MB at 100 / 1,000 runs\s+{NUMBER} / {NUMBER}", out), out


def test_unknown_section_is_refused_naming_the_sections():
    refused = benchmark("--only", "emulator,warp")
    assert refused.returncode == 2
    assert "unknown section(s) warp: choose from latency, burst, emulator, history, dask, stack, dashboard" in refused.stderr


def test_markdown_table_has_one_row_per_figure():
    report = load_report()
    Row, p50_p90, print_table = report.Row, report.p50_p90, report.print_table

    out = io.StringIO()
    print_table([Row("4", "flow run", p50_p90([3.0, 1.0, 2.0]), "x | y", "2.00x")], markdown=True, out=out)
    assert out.getvalue().splitlines() == ["| goal | measure | ours | stock | vs | target |", "|---|---|---|---|---|---|",
                                           "| 4 | flow run | 2.00 / 3.00 s (n=3) | x / y | 2.00x |  |"]
