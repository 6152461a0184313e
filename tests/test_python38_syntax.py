"""Every Python file of the project parses as Python 3.8 (the image default), and opts into lazy annotations."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import List

import pytest

from prefect_emulator.testing import REPO_ROOT

FOLDERS = ("agents", "dags", "tests", "scripts")


def python_files() -> List[Path]:
    files = []
    for folder in FOLDERS:
        files += sorted(p for p in (REPO_ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return files


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_file_parses_as_python_38(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    # feature_version=(3, 8) rejects syntax newer than 3.8: `match`, parenthesized context managers, ...
    ast.parse(source, filename=str(path), feature_version=(3, 8))


def test_there_are_files_to_check() -> None:
    names = {str(p.relative_to(REPO_ROOT)) for p in python_files()}
    assert "agents/cli/main.py" in names and "dags/flow-test-hello/test-hello.py" in names
