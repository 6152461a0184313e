"""The emulator's floor plan: its modules import each other without a loop (no import hidden inside a function to
break one), and the schema and the resolvers are checked against each other when the schema is built, so an
operation without a resolver fails at start-up instead of answering null."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

from prefect_emulator import runs, schema
from tests.imports import import_loop

PACKAGE = Path(schema.__file__).parent
# Imports inside functions that are there for start-up speed, not to break a loop: the command line answers
# --help and option errors without importing prefect and graphql-core.
LAZY_BY_DESIGN = {"__main__"}


def local_imports(path: Path) -> Dict[str, List[int]]:
    """The package modules `path` imports (relative imports), each with the line numbers of its imports."""
    found: Dict[str, List[int]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [alias.name for alias in node.names]
            for name in names:
                found.setdefault(name.split(".")[0], []).append(node.lineno)
    return found


def top_level_lines(path: Path) -> Set[int]:
    """Line numbers of the module's top-level import statements."""
    return {node.lineno for node in ast.parse(path.read_text()).body if isinstance(node, ast.ImportFrom)}


def test_no_module_imports_a_package_module_inside_a_function():
    late = []
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem in LAZY_BY_DESIGN:
            continue
        top = top_level_lines(path)
        for module, lines in local_imports(path).items():
            late += [f"{path.name}:{line} imports .{module}" for line in lines if line not in top]
    assert late == []


def test_the_package_modules_import_each_other_without_a_loop():
    graph = {path.stem: set(local_imports(path)) for path in PACKAGE.glob("*.py")}
    loop = import_loop(graph)
    assert loop is None, "import loop: " + " -> ".join(loop or [])


def test_every_query_that_prefect_sdl_declares_has_a_resolver():
    assert {"hello", "api", "reference_data", "auth_info", "mapped_children", "get_task_run_info"} <= set(
        schema.prefect_query_names())
    built = schema.build()
    for name in schema.prefect_query_names():
        assert built.query_type.fields[name].resolve is not None, name


def test_an_operation_without_a_resolver_fails_at_start_up_naming_it(monkeypatch):
    monkeypatch.delitem(runs.RESOLVERS, "create_flow_run")
    with pytest.raises(RuntimeError, match="no resolver for create_flow_run"):
        schema.build()


def test_a_resolver_for_an_operation_the_schema_lacks_fails_at_start_up_naming_it(monkeypatch):
    monkeypatch.setitem(runs.RESOLVERS, "create_flow_runs_in_bulk", runs.RESOLVERS["create_flow_run"])
    with pytest.raises(RuntimeError, match="create_flow_runs_in_bulk"):
        schema.build()
