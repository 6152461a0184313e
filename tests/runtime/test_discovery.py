"""`list` and `check`: DAG folders are found, loaded without running their main block, and checked."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

from agents.testing import run_cli, runtime_env
from tests.runtime.conftest import repo_dag_names, write_plain_dag


@pytest.fixture
def env(tmp_path: Path, empty_env_dir: Path) -> Dict[str, str]:
    """No API is needed by list/check: the URL points nowhere on purpose."""
    return runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir)


def test_list_shows_every_repo_dag_with_project_and_labels(env: Dict[str, str]) -> None:
    result = run_cli(["list"], env)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FILE", "PROJECT", "LABELS", "SCHEDULE"]
    for name in repo_dag_names():
        assert any(line.startswith(name + " ") for line in lines), f"{name} missing:\n{result.stdout}"
    hello = next(line for line in lines if line.startswith("flow-test-hello "))
    assert "flow-test-hello/test-hello.py" in hello and "My Tests" in hello and " hello " in hello


def test_check_passes_on_the_repo_dags(env: Dict[str, str]) -> None:
    result = run_cli(["check"], env)
    assert result.returncode == 0, result.stdout
    n = len(repo_dag_names())
    assert f"{n} of {n} DAGs OK" in result.stdout


def test_loading_a_dag_does_not_run_its_main_block(tmp_path: Path, env: Dict[str, str]) -> None:
    marker = tmp_path / "main-ran"
    write_plain_dag(tmp_path / "dags", "guarded", ["plain"],
                    extra=f"\nif __name__ == '__main__':\n    open({str(marker)!r}, 'w').close()\n")
    env["DAGS_FOLDER"] = str(tmp_path / "dags")
    result = run_cli(["check"], env)
    assert result.returncode == 0, result.stdout
    assert not marker.exists()


def test_list_shows_schedule_and_custom_project(tmp_path: Path, env: Dict[str, str]) -> None:
    path = write_plain_dag(tmp_path / "dags", "scheduled", ["plain"])
    path.write_text(path.read_text().replace(
        "with Flow(FLOW_NAME,", "from prefect.schedules import CronSchedule\nPROJECT = 'Nightly'\n"
        "with Flow(FLOW_NAME, schedule=CronSchedule('0 3 * * *'),"))
    env["DAGS_FOLDER"] = str(tmp_path / "dags")
    result = run_cli(["list"], env)
    assert result.returncode == 0, result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("scheduled "))
    assert "Nightly" in row and "cron 0 3 * * *" in row


BROKEN = {
    "syntax-error": ("with Flow('syntax-error' as flow:\n", "syntax error at line"),
    "import-error": ("import no_such_module_here\n", "ModuleNotFoundError: No module named 'no_such_module_here'"),
    "no-flow": ("x = 1\n", "defines no prefect Flow"),
    "wrong-name": ("from prefect import Flow\nflow = Flow('other-name')\n",
                   "flow name 'other-name' does not match the folder 'wrong-name'"),
    "bad-label": ("from prefect import Flow\nfrom prefect.run_configs import LocalRun\n"
                  "flow = Flow('bad-label', run_config=LocalRun(labels=['has space']))\n", "invalid label 'has space'"),
    "two-flows": ("from prefect import Flow\na = Flow('two-flows')\nb = Flow('two-flows')\n",
                  "duplicate flow name 'two-flows'"),
    "bad-project": ("from prefect import Flow\nPROJECT = ''\nflow = Flow('bad-project')\n",
                    "PROJECT must be a non-empty string"),
}


def test_check_reports_each_problem_with_its_file(tmp_path: Path, env: Dict[str, str]) -> None:
    dags = tmp_path / "dags"
    for name, (source, _) in BROKEN.items():
        (dags / name).mkdir(parents=True)
        (dags / name / "dag.py").write_text(source)
    (dags / "empty").mkdir()
    (dags / "two-files").mkdir()
    (dags / "two-files" / "a.py").write_text("")
    (dags / "two-files" / "b.py").write_text("")
    write_plain_dag(dags, "good", ["plain"])
    write_plain_dag(dags, "Good", ["plain"])
    env["DAGS_FOLDER"] = str(dags)
    result = run_cli(["check"], env)
    assert result.returncode == 1
    out = result.stdout
    for name, (_, reason) in BROKEN.items():
        assert f"{dags / name / 'dag.py'}: " in out and reason in out, f"{name}: {reason!r} not in\n{out}"
    assert f"no .py file in {dags / 'empty'}" in out
    assert "2 .py files" in out and "a.py, b.py" in out
    assert "duplicate DAG name" in out and "differ only in case" in out
    assert f"2 of {len(BROKEN) + 4} DAGs OK" not in out  # 'Good' and 'good' clash: only one of them is OK
    assert f"1 of {len(BROKEN) + 4} DAGs OK" in out
    assert "Traceback" not in out


def test_empty_dags_folder_fails_check(tmp_path: Path, env: Dict[str, str]) -> None:
    empty = tmp_path / "no-dags"
    empty.mkdir()
    env["DAGS_FOLDER"] = str(empty)
    result = run_cli(["check"], env)
    assert result.returncode == 1
    assert f"no DAG folders in {empty}" in result.stdout
