"""The floor plan of `agents/`, every module of every subpackage: its modules import each other without a loop
at module level, and the environment is read in few places: every `DAGS_*` variable in agents.settings, what a
flow-run process receives from its agent in agents.submission."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import agents
from tests.imports import import_loop

PACKAGE = Path(agents.__file__).parent
# Modules that touch os.environ without parsing a setting of ours, and why:
ENVIRONMENT_WITHOUT_SETTINGS = {
    "agents.config",  # loads the env files into it; prefect's own variables (PREFECT_AUTH_KEY, config paths)
    "agents.flowrun.forkrun",  # a forked run replaces it with the run's; PYTHONPATH, prefect's heartbeat mode
}
READERS = {"agents.settings", "agents.submission"}


def modules() -> Dict[str, Path]:
    """Every module of the package, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = ("agents",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def top_level_imports(path: Path, known: Set[str]) -> Set[str]:
    """The package modules `path` imports at module level (not inside a function)."""
    imported: Set[str] = set()
    for node in ast.parse(path.read_text()).body:
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        imported |= {name for name in names if name in known}
    return imported


def test_every_subpackage_module_is_seen() -> None:
    found = modules()
    for name in ("agents.settings", "agents.submission", "agents.config", "agents.cli.main", "agents.agent.hosting",
                 "agents.flowrun.child", "agents.flowrun.lease", "agents.dagkit", "agents.dagkit.datafiles",
                 "agents.dagkit.executors", "agents.dagkit.checks"):
        assert name in found, sorted(found)


def test_the_modules_import_each_other_without_a_loop() -> None:
    found = modules()
    graph = {name: top_level_imports(path, set(found)) - {name} for name, path in found.items()}
    loop = import_loop(graph)
    assert loop is None, "import loop: " + " -> ".join(loop or [])


def reads_environment(path: Path) -> bool:
    """Whether the module uses os.environ or os.getenv in its code (not in its docstrings)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "getenvb", "environb"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                {alias.name for alias in node.names} & {"environ", "getenv"}:
            return True
    return False


def dags_names(path: Path) -> List[str]:
    """The `DAGS_...` string constants of the module's code (its docstrings and messages aside: whole
    constants only)."""
    return [node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("DAGS_")
            and node.value.replace("_", "").isalnum()]


def test_only_settings_and_submission_read_our_variables() -> None:
    found = modules()
    readers = {name for name, path in found.items() if reads_environment(path)}
    assert readers <= READERS | ENVIRONMENT_WITHOUT_SETTINGS, sorted(readers - READERS - ENVIRONMENT_WITHOUT_SETTINGS)
    for name in ENVIRONMENT_WITHOUT_SETTINGS:
        assert dags_names(found[name]) == [], name


def test_the_dag_toolkit_imports_no_process_of_the_runtime() -> None:
    """agents.dagkit is what DAG files import, in flow-run processes and (by value) on Dask workers: it may use
    the shared modules (config, settings), never the CLI, the agent or the flow-run child."""
    found = modules()
    for name, path in found.items():
        if name.startswith("agents.dagkit"):
            imported = {module for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, (ast.Import, ast.ImportFrom))
                        for module in ([node.module or ""] if isinstance(node, ast.ImportFrom)
                                       else [alias.name for alias in node.names])}
            assert not {m for m in imported if m.startswith(("agents.cli", "agents.agent", "agents.flowrun"))}, name
