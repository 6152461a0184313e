"""scripts/prepare-offline.sh (and scripts/configure.sh, the offline switch it calls) and the image's offline install: idempotent on a prepared machine, and a clear
error naming the fix for each thing that is missing."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from prefect_emulator.testing import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "prepare-offline.sh"
BASH = shutil.which("bash") or "/bin/bash"


def run_script(env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_prepare_offline_without_docker_names_the_missing_cli(tmp_path):
    # a PATH holding only what the script needs before its first check: no docker
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):
        os.symlink(shutil.which(tool), bin_dir / tool)
    proc = run_script({"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert "docker CLI is not installed" in proc.stderr and "Fix:" in proc.stderr, proc.stderr


@pytest.mark.docker
def test_prepare_offline_names_a_python_it_cannot_find():
    env = dict(os.environ, OFFLINE_PYTHON_VERSION="3.99")
    proc = run_script(env)
    assert proc.returncode == 1
    assert "no host python3.99" in proc.stderr and "Fix:" in proc.stderr, proc.stderr


@pytest.mark.docker
def test_prepare_offline_does_nothing_on_a_prepared_machine(tmp_path):
    # the offline switch goes to a file of the test's own, not to the developer's .env
    env = dict(os.environ, ENV_FILE=str(tmp_path / "env"))
    first = run_script(env)  # prepares, if this machine is not yet
    assert first.returncode == 0, first.stdout + first.stderr
    started = time.monotonic()
    proc = run_script(env)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("already") == 4, proc.stdout
    assert took < 30, f"a warm prepare-offline took {took:.1f}s"


@pytest.mark.docker
def test_prepare_offline_switches_env_to_the_emulator_and_keeps_the_users_lines(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("COMPOSE_PROFILES=server\nDASK_WORKER_THREADS=4\n")
    proc = run_script(dict(os.environ, ENV_FILE=str(env_file)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "now selects the emulator" in proc.stdout, proc.stdout
    lines = env_file.read_text().splitlines()
    assert "COMPOSE_PROFILES=emulator" in lines and "COMPOSE_PROFILES=server" not in lines
    assert "PYTHON_VERSION=3.11" in lines and "DASK_WORKER_THREADS=4" in lines
    expected_uid = 5678 if os.getuid() == 0 else os.getuid()
    assert f"DAGS_UID={expected_uid}" in lines, lines


def test_configure_refuses_an_unknown_mode_naming_the_valid_ones(tmp_path):
    proc = subprocess.run([BASH, str(REPO_ROOT / "scripts" / "configure.sh"), "offline"], cwd=REPO_ROOT,
                          env=dict(os.environ, ENV_FILE=str(tmp_path / "env")), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "unknown mode 'offline'" in proc.stderr and "server, emulator, emulator-ui, cloud" in proc.stderr, proc.stderr
    assert not (tmp_path / "env").exists(), "nothing is written on bad input"


def test_configure_emulator_ui_selects_the_emulator_and_the_prefect_ui_profiles(tmp_path):
    env_file = tmp_path / "env"
    proc = subprocess.run([BASH, str(REPO_ROOT / "scripts" / "configure.sh"), "emulator-ui"], cwd=REPO_ROOT,
                          env=dict(os.environ, ENV_FILE=str(env_file)), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "COMPOSE_PROFILES=emulator,prefect-ui" in env_file.read_text().splitlines()


@pytest.mark.docker
@pytest.mark.slow
def test_image_build_with_an_incomplete_wheelhouse_fails_naming_the_fix(tmp_path):
    wheels = REPO_ROOT / "wheels"
    if not any(wheels.glob("*.whl")):
        pytest.skip("no wheelhouse: run scripts/prepare-offline.sh")
    # A build context like the project's, whose wheelhouse lacks one pinned package (six).
    context = tmp_path / "context"
    (context / "wheels").mkdir(parents=True)
    for wheel in wheels.glob("*.whl"):
        if not wheel.name.lower().startswith("six-"):
            shutil.copy(wheel, context / "wheels")
    for name in ("Dockerfile", "requirements.txt"):
        shutil.copy(REPO_ROOT / name, context)
    for folder in ("agents", "dags", "data", "scripts", "prefect_emulator", "env"):
        (context / folder).mkdir(parents=True, exist_ok=True)
    (context / "env" / "defaults.env").touch()
    (context / "compose.yaml").write_text(
        "services:\n  probe:\n    image: dags-prefect-io-probe:incomplete-wheelhouse\n"
        "    build:\n      context: .\n      args:\n        PYTHON_VERSION: \"3.11\"\n")
    project = f"dagsprobe{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(["docker", "compose", "-p", project, "build", "probe"], cwd=context,
                          capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, "the build must not fall back to the index silently"
    assert "wheels/ does not hold every pinned package" in output and "Fix:" in output, output[-3000:]
