"""The house's one rule across its rooms: the product and its tools (the runtime, the emulator, the dashboard,
the Swarm renderer, the DAGs and scripts/) never import the tests; what a tool shares with the tests lives in
the product (agents.testing, prefect_emulator.testing, dashboard.testing)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import List

from prefect_emulator.testing import REPO_ROOT

ROOMS = ("agents", "dags", "dashboard", "prefect_emulator", "scripts", "swarm")


def imports_of_tests(path: Path, root: Path = REPO_ROOT) -> List[str]:
    """`path:line module` (the path relative to `root`) for each import of the `tests` package in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else \
            [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        found += [f"{path.relative_to(root)}:{node.lineno} {name}" for name in names
                  if name == "tests" or name.startswith("tests.")]
    return found


def test_the_product_and_its_tools_never_import_the_tests():
    files = [path for room in ROOMS for path in sorted((REPO_ROOT / room).rglob("*.py"))]
    assert len(files) > 50, "the rooms were not found"
    assert [hit for path in files for hit in imports_of_tests(path)] == []


def test_an_import_of_the_tests_is_found(tmp_path: Path):
    tool = tmp_path / "tool.py"
    tool.write_text("import os\nfrom tests.runtime.conftest import FIXTURES\nimport tests.checkout\nimport testsuite\n")
    assert imports_of_tests(tool, tmp_path) == ["tool.py:2 tests.runtime.conftest", "tool.py:3 tests.checkout"]
