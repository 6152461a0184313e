"""Configuration: env files and their precedence, backend checks, the tutorial's variables."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from agents.errors import UserError
from agents.settings import seconds_from_env
from agents.testing import run_cli, runtime_env
from prefect_emulator.testing import free_port


def _config(env_dir: Path, tmp_path: Path, **extra: str) -> str:
    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", env_dir, **extra)
    for key in ("PREFECT__BACKEND", "PREFECT__SERVER__ENDPOINT", "PREFECT__CLOUD__API"):
        env.pop(key)
    env.update(extra)
    result = run_cli(["config"], env, timeout=60)
    assert result.returncode == 0, result.stdout
    return result.stdout


def test_local_env_overrides_defaults_and_the_process_environment_wins(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "defaults.env").write_text(
        "PREFECT__BACKEND=server\nPREFECT__SERVER__ENDPOINT=http://defaults:4200\n"
        "DAGS_DEFAULT_PROJECT=From Defaults\nDAGS_FOLDER=/from/defaults\n")
    (env_dir / "local.env").write_text("PREFECT__SERVER__ENDPOINT=http://local:4200\nDAGS_FOLDER=/from/local\n")
    out = _config(env_dir, tmp_path, DAGS_FOLDER="/from/process")
    assert "api: http://local:4200" in out          # local.env beats defaults.env
    assert "default project: From Defaults" in out  # defaults.env fills what local.env leaves out
    assert "dags folder: /from/process" in out      # the process environment beats both


def test_repo_defaults_select_the_server_backend_and_my_tests(tmp_path: Path) -> None:
    repo_env = Path(__file__).resolve().parents[2] / "env"
    out = _config(repo_env, tmp_path)
    assert "backend: server" in out
    assert "default project: My Tests" in out


def test_tutorial_auth_key_selects_cloud_and_is_never_printed(tmp_path: Path, empty_env_dir: Path) -> None:
    out = _config(empty_env_dir, tmp_path, PREFECT_AUTH_KEY="tutorial-secret-key")
    assert "backend: cloud" in out
    assert "tutorial-secret-key" not in out


def test_tutorial_auth_key_in_local_env_selects_cloud_over_the_committed_default(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "defaults.env").write_text("PREFECT__BACKEND=server\n")
    (env_dir / "local.env").write_text("PREFECT_AUTH_KEY=tutorial-secret-key\n")
    out = _config(env_dir, tmp_path)
    assert "backend: cloud" in out
    assert "tutorial-secret-key" not in out


def test_unknown_backend_is_a_clear_error(tmp_path: Path, empty_env_dir: Path) -> None:
    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, PREFECT__BACKEND="clowd")
    result = run_cli(["list"], env, timeout=60)
    assert result.returncode == 1
    assert "unknown backend 'clowd'" in result.stdout
    assert "'server'" in result.stdout and "'cloud'" in result.stdout
    assert "Traceback" not in result.stdout


def test_cloud_backend_without_key_fails_before_any_network_call(tmp_path: Path, empty_env_dir: Path) -> None:
    # A listening socket stands for the API: the command must fail without ever connecting to it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        listener.setblocking(False)
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        env = runtime_env(url, tmp_path / "home", empty_env_dir, PREFECT__BACKEND="cloud")
        result = run_cli(["register", "flow-test-hello"], env, timeout=60)
        try:
            listener.accept()
            connected = True
        except BlockingIOError:
            connected = False
    assert result.returncode == 1, result.stdout
    assert "no API key" in result.stdout and "PREFECT__CLOUD__API_KEY" in result.stdout
    assert not connected, "the CLI connected to the API before checking the key"


def test_unreachable_api_fails_after_bounded_retries_naming_the_url(tmp_path: Path, empty_env_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = runtime_env(url, tmp_path / "home", empty_env_dir, DAGS_API_WAIT_TIMEOUT="2")
    started = time.monotonic()
    result = run_cli(["init", "--wait-timeout", "2"], env, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stdout
    assert f"the Prefect API at {url} did not answer" in result.stdout
    assert "attempt 2" in result.stdout  # it retried
    assert elapsed < 30


def test_bad_wait_timeout_value_is_a_clear_error(tmp_path: Path, empty_env_dir: Path) -> None:
    env = runtime_env("http://127.0.0.1:1", tmp_path / "home", empty_env_dir, DAGS_API_WAIT_TIMEOUT="soon")
    result = run_cli(["register"], env, timeout=60)
    assert result.returncode == 1
    assert "DAGS_API_WAIT_TIMEOUT must be a number of seconds, got 'soon'" in result.stdout


@pytest.mark.parametrize("raw, allow_zero, expected", [
    (None, False, 7.0), ("", False, 7.0), ("2.5", False, 2.5), ("0", True, 0.0),
])
def test_seconds_from_env_reads_numbers_and_defaults(monkeypatch, raw, allow_zero, expected) -> None:
    if raw is None:
        monkeypatch.delenv("DAGS_TEST_SECONDS", raising=False)
    else:
        monkeypatch.setenv("DAGS_TEST_SECONDS", raw)
    assert seconds_from_env("DAGS_TEST_SECONDS", 7.0, allow_zero=allow_zero) == expected


@pytest.mark.parametrize("raw, allow_zero, message", [
    ("soon", False, "DAGS_TEST_SECONDS must be a number of seconds, got 'soon'"),
    ("0", False, "DAGS_TEST_SECONDS must be > 0, got '0'"),
    ("-1", True, "DAGS_TEST_SECONDS must be >= 0, got '-1'"),
])
def test_seconds_from_env_names_the_variable_on_bad_values(monkeypatch, raw, allow_zero, message) -> None:
    monkeypatch.setenv("DAGS_TEST_SECONDS", raw)
    with pytest.raises(UserError) as excinfo:
        seconds_from_env("DAGS_TEST_SECONDS", 7.0, allow_zero=allow_zero)
    assert str(excinfo.value) == message
