"""`docker compose watch` rebuilds the image and replaces a DAG service's container when a DAG file changes,
in a copy of the checkout (the edit must not touch this one) with its own project, image and port."""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.checkout import copy_checkout
from prefect_emulator.testing import free_port, stop
from tests.stack.conftest import services_uid

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVICE = "dag-flow-test-hello"
DAG_FILE = Path("dags/flow-test-hello/test-hello.py")


def compose(root: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", "compose", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"docker compose {' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc


def container_id(root: Path, env: dict) -> str:
    return compose(root, env, "ps", "-q", SERVICE).stdout.strip()


def test_watch_rebuilds_and_restarts_a_dag_service_when_its_file_changes(tmp_path):
    project = f"dagswatch{uuid.uuid4().hex[:8]}"
    root = tmp_path / project
    root.mkdir()
    copy_checkout(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT", "COMPOSE_", "DAGS_"))}
    env.update(COMPOSE_PROFILES="emulator", PYTHON_VERSION="3.11", APOLLO_HOST_PORT=str(free_port()),
               DAGS_HEALTH_INTERVAL="2s", **services_uid())
    watch = None
    try:
        compose(root, env, "up", "-d", "--wait", SERVICE)
        before = container_id(root, env)
        log = open(tmp_path / "watch.log", "w+")
        watch = subprocess.Popen(["docker", "compose", "watch", "--no-up", SERVICE], cwd=root, env=env,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while "Watch enabled" not in (tmp_path / "watch.log").read_text():
            assert watch.poll() is None and time.monotonic() < deadline, (tmp_path / "watch.log").read_text()
            time.sleep(0.5)
        started = time.monotonic()
        with open(root / DAG_FILE, "a") as dag:
            dag.write("# edited while `docker compose watch` runs\n")
        deadline = time.monotonic() + 300
        while True:
            after = container_id(root, env)
            if after and after != before:
                break
            assert time.monotonic() < deadline, (tmp_path / "watch.log").read_text()[-3000:]
            time.sleep(1)
        print(f"watch: edit to new container {time.monotonic() - started:.0f} s")
        compose(root, env, "up", "-d", "--wait", "--no-build", SERVICE)
        tail = compose(root, env, "exec", "-T", SERVICE, "tail", "-n", "1", f"/app/{DAG_FILE}").stdout
        assert "edited while `docker compose watch` runs" in tail, "the new container runs the old image"
    finally:
        if watch is not None:
            stop(watch)
        subprocess.run(["docker", "compose", "down", "-v", "--timeout", "5"], cwd=root, env=env,
                       capture_output=True, timeout=300)
        subprocess.run(["docker", "image", "rm", f"{project}-dags:latest", f"{project}-emulator:latest"],
                       capture_output=True, timeout=120)
