"""Tests marked `docker` skip where no Docker engine answers, except with CI=true, where they fail."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prefect_emulator.testing import REPO_ROOT


def run_docker_tests_without_docker(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    """Runs the docker-marked tests of tests/stack/test_config.py with a PATH that has no `docker`."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(tmp_path)  # an empty folder: no docker CLI can be found
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "docker",
                           "--maxfail=1", "tests/stack/test_config.py"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", [True, False])
def test_docker_tests_fail_in_ci_and_skip_elsewhere_when_docker_is_missing(tmp_path: Path, ci: bool) -> None:
    done = run_docker_tests_without_docker(tmp_path, ci)
    if ci:
        assert done.returncode == 1, done.stdout
        assert "CI=true and no Docker engine" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "skipped" in done.stdout and "failed" not in done.stdout and "error" not in done.stdout
