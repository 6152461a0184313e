"""The pinned dependency set resolves for Python 3.8 (the image default) and 3.11 (the offline image's) to the
same versions, and works on this Python.

prefect 1.4.1 breaks with marshmallow 4 and pendulum 3, so requirements.txt pins every package the
runtime installs: nothing may be left for pip to pick on the day of a build.
"""
from __future__ import annotations

import re
import shutil
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


def test_the_example_dags_tools_are_pinned_to_the_last_releases_for_python_3_8() -> None:
    """pandas, numpy and matplotlib (the ETL DAG's transform and chart): their last releases with Python 3.8
    wheels, which have 3.11 wheels too; Pillow stays pinned as matplotlib's dependency."""
    runtime = pins(REPO_ROOT / "requirements.txt")
    assert runtime["pandas"] == "2.0.3" and runtime["numpy"] == "1.24.4"
    assert runtime["matplotlib"].startswith("3.7.")
    for dependency in ("contourpy", "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "tzdata",
                       "pytz", "pillow", "packaging"):
        assert dependency in runtime, f"{dependency} (of pandas or matplotlib) is not pinned"


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


def downloaded_versions(folder: Path) -> Dict[str, str]:
    """name -> version of the wheels and sdists pip downloaded into `folder`."""
    found = {}
    for path in folder.iterdir():
        stem = path.name[:-len(".tar.gz")] if path.name.endswith(".tar.gz") else path.name
        name, version = stem.split("-")[:2] if path.suffix == ".whl" else stem.rsplit("-", 1)
        found[canonical(name)] = version
    return found


@pytest.mark.slow
@pytest.mark.parametrize("version", ["3.8", "3.11"])
def test_the_pins_resolve_with_nothing_unpinned(tmp_path: Path, version: str) -> None:
    # pip resolves the whole set (dependencies included) as it would for that interpreter, from wheels. On 3.11,
    # pendulum 2.1.2 has no wheel (scripts/prepare-offline.sh builds one), so a 3.11 interpreter resolves it from
    # its sdist, and every other pin must still be a wheel.
    if version == "3.8":
        python, flags = sys.executable, ["--python-version", "3.8", "--only-binary=:all:"]
    else:
        python = sys.executable if sys.version_info[:2] == (3, 11) else shutil.which("python3.11")
        if python is None:
            pytest.skip("resolving for 3.11 needs a Python 3.11 (pendulum's 3.11 metadata comes from its sdist)")
        flags = ["--only-binary=:all:", "--no-binary=pendulum"]
    result = subprocess.run(
        [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", *flags, "-d", str(tmp_path),
         "-r", str(REPO_ROOT / "requirements-dev.txt"), "-r", str(REPO_ROOT / "requirements-build.txt")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    downloaded = downloaded_versions(tmp_path)
    wanted = {**pins(REPO_ROOT / "requirements.txt"), **pins(REPO_ROOT / "requirements-dev.txt"),
              **pins(REPO_ROOT / "requirements-build.txt")}
    unpinned = sorted(set(downloaded) - set(wanted))
    assert not unpinned, f"resolved for {version} but not pinned: {unpinned}"
    assert downloaded == {k: v for k, v in wanted.items() if k in downloaded}
    assert set(wanted) <= set(downloaded), f"pinned but not needed on {version}: {sorted(set(wanted) - set(downloaded))}"
