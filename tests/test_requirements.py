"""The pinned dependency set resolves for Python 3.8 (the image default) and works on this Python.

prefect 1.4.1 breaks with marshmallow 4 and pendulum 3, so requirements.txt pins every package the
runtime installs: nothing may be left for pip to pick on the day of a build.
"""
from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict

import pytest

from prefect_emulator.testing import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> Dict[str, str]:
    """name -> version of every `name==version` line in a requirements file (not its -r includes)."""
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def test_every_requirement_line_is_an_exact_pin() -> None:
    for path in (REPO_ROOT / "requirements.txt", REPO_ROOT / "requirements-dev.txt",
                 REPO_ROOT / "requirements-build.txt"):
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and not line.startswith("-r "):
                assert PIN.match(line), f"{path.name}: {line!r} is not pinned with =="


def test_pins_that_prefect_1_4_1_needs() -> None:
    runtime = pins(REPO_ROOT / "requirements.txt")
    assert runtime["prefect"] == "1.4.1"
    assert runtime["marshmallow"].startswith("3."), "marshmallow 4 breaks prefect 1.4.1"
    assert runtime["pendulum"].startswith("2."), "pendulum 3 breaks prefect 1.4.1"


def test_this_environment_has_exactly_the_pinned_versions() -> None:
    wanted = {**pins(REPO_ROOT / "requirements.txt"), **pins(REPO_ROOT / "requirements-dev.txt")}
    wrong = {}
    for name, version in wanted.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    # Backports only some Pythons need are pinned but not installed on newer ones.
    wrong = {k: v for k, v in wrong.items() if not (v[1] is None and k in {"exceptiongroup", "tomli"})}
    assert not wrong, f"pinned vs installed: {wrong}"
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_the_pins_resolve_for_python_3_8_with_nothing_unpinned(tmp_path: Path) -> None:
    # pip resolves the whole set (dependencies included) as it would for a 3.8 interpreter, from wheels.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--python-version", "3.8", "--only-binary=:all:", "-d", str(tmp_path),
         "-r", str(REPO_ROOT / "requirements-dev.txt"), "-r", str(REPO_ROOT / "requirements-build.txt")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    downloaded = {canonical(p.name.split("-")[0]): p.name.split("-")[1] for p in tmp_path.glob("*.whl")}
    wanted = {**pins(REPO_ROOT / "requirements.txt"), **pins(REPO_ROOT / "requirements-dev.txt"),
              **pins(REPO_ROOT / "requirements-build.txt")}
    unpinned = sorted(set(downloaded) - set(wanted))
    assert not unpinned, f"resolved for 3.8 but not pinned: {unpinned}"
    assert downloaded == {k: v for k, v in wanted.items() if k in downloaded}
    assert set(wanted) <= set(downloaded), f"pinned but not needed on 3.8: {sorted(set(wanted) - set(downloaded))}"
