"""The emulator's command line: bad options exit 2 with a message naming the problem and the fix; every option
can come from the environment; SIGTERM stops it cleanly."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import requests

from prefect_emulator.testing import REPO_ROOT, Emulator, free_port, stop, wait_for_http


def emulator_cli(args: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Runs `python -m prefect_emulator ARGS` to completion (for options that make it exit)."""
    return subprocess.run([sys.executable, "-m", "prefect_emulator", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, expected", [
    (["--port", "70000"], "Invalid value for '--port': 70000 is not in the range 0<=x<=65535"),
    (["--port", "http"], "Invalid value for '--port': 'http' is not a valid integer"),
    (["--heartbeat-timeout", "0"], "Invalid value for '--heartbeat-timeout': '0' must be a finite number of "
                                   "seconds above 0"),
    (["--heartbeat-timeout", "soon"], "Invalid value for '--heartbeat-timeout': 'soon' is not a number of seconds"),
    (["--heartbeat-timeout", "nan"], "Invalid value for '--heartbeat-timeout': 'nan' must be a finite number"),
    (["--lazarus-interval", "inf"], "Invalid value for '--lazarus-interval': 'inf' must be a finite number"),
    (["--lazarus-interval", "-1"], "Invalid value for '--lazarus-interval': '-1' must be a finite number"),
    (["--lazarus-stale-after", "nan"], "Invalid value for '--lazarus-stale-after': 'nan' must be a finite number"),
    (["--db", "/nonexistent-folder/emulator.sqlite"], "error: cannot open database"),
    (["--verbose"], "No such option: --verbose"),
])
def test_bad_option_exits_2_naming_the_problem(args: List[str], expected: str) -> None:
    if "--port" not in args:
        args = args + ["--port", str(free_port())]  # should it start after all, it must not take 4200
    done = emulator_cli(args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_port_already_in_use_exits_2_with_a_hint() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        done = emulator_cli(["--port", str(busy.getsockname()[1])])
    assert done.returncode == 2
    assert "cannot listen on 127.0.0.1" in done.stderr and "--port" in done.stderr


def test_options_come_from_the_environment_and_sigterm_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, PREFECT_EMULATOR_PORT=str(port), PREFECT_EMULATOR_HEARTBEAT_TIMEOUT="7",
               PREFECT_EMULATOR_LAZARUS_INTERVAL="5", PREFECT_EMULATOR_LAZARUS_STALE_AFTER="9",
               PREFECT_EMULATOR_DB=str(tmp_path / "env.sqlite"), PREFECT_EMULATOR_API_KEY="from-env")
    log_path = tmp_path / "emulator.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect_emulator"], cwd=REPO_ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc=proc)
        url = f"http://127.0.0.1:{port}"
        refused = requests.post(url, json={"query": "{ hello }"}, timeout=10).json()
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        answered = requests.post(url, json={"query": "{ hello }"}, timeout=10,
                                 headers={"Authorization": "Bearer from-env"}).json()
        assert "errors" not in answered and answered["data"]["hello"]
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        stop(proc)
    text = log_path.read_text()
    assert "heartbeat_timeout=7s" in text and "env.sqlite" in text
    assert "lazarus_interval=5s, lazarus_stale_after=9s" in text
    assert "EMULATOR stopped" in text
    assert "from-env" not in text  # the key itself is never logged
    assert (tmp_path / "env.sqlite").exists()


def test_second_emulator_on_the_same_db_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"
    with Emulator(tmp_path, db=db):
        done = emulator_cli(["--db", str(db), "--port", str(free_port())])
    assert done.returncode == 2
    assert "in use by another emulator process" in done.stderr and "another --db file" in done.stderr
    with Emulator(tmp_path, db=db) as again:  # once the first one stopped, the file is free again
        assert again.graphql("{ hello }")["data"]["hello"]


def test_api_key_option_on_the_command_line_is_required_on_requests(tmp_path: Path) -> None:
    # The option exists for people who start it by hand; the project's own tests and compose files pass
    # the key through PREFECT_EMULATOR_API_KEY so that it is not in any process's arguments.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_EMULATOR_")}
    with open(tmp_path / "emulator.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect_emulator", "--port", str(port),
                                 "--api-key", "from-argv"], cwd=REPO_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", proc=proc)
        url = f"http://127.0.0.1:{port}"
        wrong = requests.post(url, json={"query": "{ hello }"}, timeout=10,
                              headers={"Authorization": "Bearer from-env"}).json()
        assert wrong["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        right = requests.post(url, json={"query": "{ hello }"}, timeout=10,
                              headers={"Authorization": "Bearer from-argv"}).json()
        assert "errors" not in right and right["data"]["hello"]
    finally:
        stop(proc)
