"""Bad settings are refused before a command acts, each with one line naming the variable or file and the fix."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Dict

import pytest

from agents.testing import run_cli, runtime_env
from prefect_emulator.testing import Emulator
from tests.runtime.conftest import write_plain_dag


def one_error_line(result) -> str:
    """The single `Error: ...` line a refused command prints (and nothing else, no traceback)."""
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 1, result.stdout
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stdout
    return lines[0]


@pytest.fixture
def env(tmp_path: Path, empty_env_dir: Path) -> Dict[str, str]:
    return runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir)


@pytest.mark.parametrize("where", ["environment", "local.env"])
def test_unknown_logging_level_is_named_with_the_valid_ones(env: Dict[str, str], empty_env_dir: Path,
                                                            where: str) -> None:
    if where == "environment":
        env["PREFECT__LOGGING__LEVEL"] = "BOGUS"  # prefect itself dies on it at import, with a traceback
    else:
        env.pop("PREFECT__LOGGING__LEVEL", None)
        (empty_env_dir / "local.env").write_text("PREFECT__LOGGING__LEVEL=BOGUS\n")
    line = one_error_line(run_cli(["check"], env, timeout=60))
    assert "PREFECT__LOGGING__LEVEL='BOGUS' is not a logging level" in line and "INFO" in line


@pytest.mark.parametrize("level", ["DEBUG", "WARNING", "10"])
def test_valid_logging_levels_are_accepted(env: Dict[str, str], level: str) -> None:
    env["PREFECT__LOGGING__LEVEL"] = level
    result = run_cli(["config"], env, timeout=60)
    assert result.returncode == 0, result.stdout


def test_env_file_that_is_not_utf8_is_named(env: Dict[str, str], empty_env_dir: Path) -> None:
    (empty_env_dir / "local.env").write_bytes(b"DAGS_DEFAULT_PROJECT=ok\nPREFECT__BACKEND=caf\xe9\n")
    line = one_error_line(run_cli(["config"], env, timeout=60))
    assert f"{empty_env_dir / 'local.env'} is not UTF-8 text (byte 0xe9 on line 2)" in line and "UTF-8" in line


def test_env_dir_that_does_not_exist_is_an_error(env: Dict[str, str], tmp_path: Path) -> None:
    env["DAGS_ENV_DIR"] = str(tmp_path / "no-such-folder")
    line = one_error_line(run_cli(["config"], env, timeout=60))
    assert f"DAGS_ENV_DIR={str(tmp_path / 'no-such-folder')!r} is not a folder" in line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_api_wait_timeout_must_be_finite(env: Dict[str, str], value: str) -> None:
    env["DAGS_API_WAIT_TIMEOUT"] = value  # nan made every wait endless: no comparison with nan is true
    line = one_error_line(run_cli(["register"], env, timeout=60))
    assert f"DAGS_API_WAIT_TIMEOUT must be" in line and repr(value) in line


def test_endpoint_with_a_wrong_path_is_named_at_once(module_emulator: Emulator, module_env: Dict[str, str]) -> None:
    url = module_emulator.url + "/wrong/path"
    env = dict(module_env, PREFECT__SERVER__ENDPOINT=url, PREFECT__CLOUD__API=url, DAGS_API_WAIT_TIMEOUT="30")
    started = time.monotonic()
    line = one_error_line(run_cli(["init", "--wait-timeout", "30"], env, timeout=60))
    print(f"a 404 endpoint was refused after {time.monotonic() - started:.1f}s (wait bound 30 s)")
    assert f"the Prefect API URL {url} answers HTTP 404" in line and "PREFECT__SERVER__ENDPOINT" in line


def test_bad_watch_poll_interval_is_refused_before_the_run_is_created(module_emulator: Emulator,
                                                                      module_env: Dict[str, str],
                                                                      tmp_path: Path) -> None:
    name = "watched-" + uuid.uuid4().hex[:6]
    write_plain_dag(tmp_path / "dags", name, ["never-run"])
    env = dict(module_env, DAGS_FOLDER=str(tmp_path / "dags"))
    assert run_cli(["register", name], env).returncode == 0
    env["DAGS_WATCH_POLL_INTERVAL"] = "0"
    line = one_error_line(run_cli(["trigger", name, "--wait"], env, timeout=60))
    assert "DAGS_WATCH_POLL_INTERVAL must be > 0, got '0'" in line
    runs = module_emulator.graphql("query($n: String) { flow_run(where: {flow: {name: {_eq: $n}}}) { id } }",
                                   {"n": name})
    assert runs["data"]["flow_run"] == [], runs
