"""Finding and loading DAGs: a DAG is a folder `dags/<name>/` holding one `.py` file with a Flow named `<name>`.

A DAG file is run the way prefect's script storage runs it (see `prefect.utilities.storage.
extract_flow_from_file`): as a module whose `__name__` is not `"__main__"`, so its registration and
hosting block does not fire. Each file gets a unique module name, so two DAGs never share globals.
"""
from __future__ import annotations

import difflib
import re
import runpy
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from agents.errors import UserError

# A label travels through env vars, compose files and command lines: keep it to a safe alphabet.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
# Folders that are never DAGs (caches, hidden folders, shared code such as `_common`).
IGNORED_PREFIXES = (".", "_")


@dataclass
class Dag:
    """One DAG folder and what loading it found.

    Attributes:
        name: the folder name, which is also the flow name
        folder: the DAG folder
        path: the DAG's .py file (None if the folder holds none or several)
        flow: the prefect Flow named `name` (None if loading failed)
        project: the module-level PROJECT, else the default project
        labels: the flow's run_config labels, sorted
        problems: what is wrong with this DAG; empty when it is usable
    """

    name: str
    folder: Path
    path: Optional[Path] = None
    flow: Any = None
    project: str = ""
    labels: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the DAG loaded and passed every check."""
        return not self.problems

    @property
    def where(self) -> str:
        """The file (or folder) to name in a report."""
        return str(self.path or self.folder)


def dag_folders(dags_folder: Path) -> List[Path]:
    """Returns the DAG folders under `dags_folder`, sorted by name.

    Args:
        dags_folder: the folder holding one folder per DAG

    Returns:
        Every sub-folder whose name does not start with "." or "_".
    """
    if not dags_folder.is_dir():
        return []
    return sorted(p for p in dags_folder.iterdir() if p.is_dir() and not p.name.startswith(IGNORED_PREFIXES))


def dag_file(folder: Path) -> Path:
    """Returns the single .py file of a DAG folder.

    Raises:
        ValueError: no .py file, or more than one.
    """
    files = sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")
    if not files:
        raise ValueError(f"no .py file in {folder}: put the DAG's script there (one file defining a Flow)")
    if len(files) > 1:
        names = ", ".join(p.name for p in files)
        raise ValueError(f"{len(files)} .py files in {folder} ({names}): a DAG folder holds exactly one script")
    return files[0]


def module_name(path: Path) -> str:
    """A unique, importable-looking module name for a DAG file (never "__main__")."""
    slug = re.sub(r"\W", "_", f"{path.parent.name}_{path.stem}")
    return f"dags_{slug}"


def run_dag_file(path: Path) -> Dict[str, Any]:
    """Executes a DAG file as a module (not as __main__) and returns its globals.

    Args:
        path: the DAG's .py file

    Returns:
        The module's globals.
    """
    import prefect

    # `loading_flow` makes prefect ignore a stray `flow.register()` at module level, as script storage does.
    with prefect.context(loading_flow=True):
        return runpy.run_path(str(path), run_name=module_name(path))


def load_dag(folder: Path, default_project: str) -> Dag:
    """Loads one DAG folder and checks it.

    Args:
        folder: the DAG folder
        default_project: the project of a DAG without a module-level PROJECT

    Returns:
        The Dag; its `problems` say what is wrong, if anything.
    """
    dag = Dag(name=folder.name, folder=folder, project=default_project)
    try:
        dag.path = dag_file(folder)
    except ValueError as exc:
        dag.problems.append(str(exc))
        return dag
    try:
        module_globals = run_dag_file(dag.path)
    except SyntaxError as exc:
        dag.problems.append(f"syntax error at line {exc.lineno}: {exc.msg}")
        return dag
    except BaseException as exc:  # an import error, or anything the script raises (even SystemExit)
        if isinstance(exc, KeyboardInterrupt):
            raise
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f" (line {last.lineno} of {last.filename})" if last else ""
        dag.problems.append(f"loading failed with {type(exc).__name__}: {exc}{at}")
        return dag
    inspect_module(dag, module_globals, default_project)
    return dag


def inspect_module(dag: Dag, module_globals: Dict[str, Any], default_project: str) -> None:
    """Fills a Dag from a loaded module's globals: its flow, project and labels, and their problems.

    Args:
        dag: the Dag to fill (name and path set)
        module_globals: the globals of the executed DAG file
        default_project: the project when the module sets no PROJECT
    """
    from prefect import Flow

    flows = [v for v in module_globals.values() if isinstance(v, Flow)]
    if not flows:
        dag.problems.append("defines no prefect Flow at module level: create one, e.g. `with Flow(%r) as flow:`"
                            % dag.name)
        return
    names = [f.name for f in flows]
    for name in sorted({n for n in names if names.count(n) > 1}):
        dag.problems.append(f"duplicate flow name {name!r}: several Flows in one file share it")
    matching = [f for f in flows if f.name == dag.name]
    if not matching:
        dag.problems.append(
            f"flow name {', '.join(repr(n) for n in names)} does not match the folder {dag.name!r}: "
            f"name the Flow {dag.name!r} or rename the folder"
        )
        return
    dag.flow = matching[0]
    project = module_globals.get("PROJECT", default_project)
    if not isinstance(project, str) or not project.strip():
        dag.problems.append(f"PROJECT must be a non-empty string, got {project!r}")
    else:
        dag.project = project
    dag.labels = flow_labels(dag.flow)
    for label in dag.labels:
        problem = label_problem(label)
        if problem:
            dag.problems.append(problem)


def flow_labels(flow: Any) -> List[str]:
    """The labels of a flow: its run_config labels, sorted (empty without a run_config)."""
    run_config = getattr(flow, "run_config", None)
    labels = getattr(run_config, "labels", None) or ()
    return sorted(str(label) for label in labels)


def label_problem(label: str) -> Optional[str]:
    """Returns why a label is invalid, or None when it is valid."""
    if not LABEL_PATTERN.match(label):
        return (f"invalid label {label!r}: a label starts with a letter or digit and holds only letters, "
                "digits and . _ : / - (no spaces or commas)")
    return None


def discover(dags_folder: Path, default_project: str) -> List[Dag]:
    """Loads every DAG folder and checks the set (duplicate names across folders included).

    Args:
        dags_folder: the folder holding one folder per DAG
        default_project: the project of a DAG without a module-level PROJECT

    Returns:
        One Dag per folder, sorted by name.
    """
    dags = [load_dag(folder, default_project) for folder in dag_folders(dags_folder)]
    seen: Dict[str, Dag] = {}
    for dag in dags:
        # Folder names can differ only in case (`Hello`, `hello`): one name on a case-insensitive disk.
        key = dag.name.lower()
        if key in seen:
            other = seen[key]
            dag.problems.append(f"duplicate DAG name: {dag.name!r} and {other.name!r} ({other.where}) differ "
                                "only in case; rename one folder")
        else:
            seen[key] = dag
    return dags


def select(dags: List[Dag], names: List[str]) -> List[Dag]:
    """Picks DAGs by name (all of them when `names` is empty).

    Raises:
        UserError: a name that is no DAG folder (see `unknown_dag`).
    """
    if not names:
        return list(dags)
    by_name = {d.name: d for d in dags}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise unknown_dag(unknown, by_name)
    return [by_name[n] for n in dict.fromkeys(names)]


def unknown_dag(unknown: List[str], known: Iterable[str]) -> UserError:
    """The error for DAG names that are no DAG folder: it lists the known DAGs, and for a near miss
    (a typo, a missing `flow-` prefix) says which one was probably meant.

    Args:
        unknown: the names asked for that are no DAG
        known: the DAG names there are

    Returns:
        The error to raise.
    """
    known = sorted(known)
    message = f"unknown DAG {', '.join(repr(n) for n in unknown)}: known DAGs are {', '.join(known) or '(none)'}"
    guesses = [close[0] for close in (difflib.get_close_matches(n, known, n=1) for n in unknown) if close]
    if guesses:
        message += f"; did you mean {' and '.join(repr(g) for g in dict.fromkeys(guesses))}?"
    return UserError(message)


def describe_schedule(flow: Any) -> str:
    """A short text for a flow's schedule: cron expressions, intervals, or '-' when it has none."""
    schedule = getattr(flow, "schedule", None)
    if schedule is None:
        return "-"
    parts = []
    for clock in getattr(schedule, "clocks", []):
        if getattr(clock, "cron", None):
            parts.append(f"cron {clock.cron}")
        elif getattr(clock, "interval", None) is not None:
            parts.append(f"every {clock.interval}")
        else:
            parts.append(type(clock).__name__)
    return "; ".join(parts) or type(schedule).__name__


def dag_from_script(flow: Any, path: Path, module_globals: Dict[str, Any], default_project: str) -> Dag:
    """Builds the Dag of a script that is running as __main__ (its flow object is already loaded).

    Args:
        flow: the Flow the script passed
        path: the script's file
        module_globals: the script's globals (for PROJECT)
        default_project: the project when the script sets no PROJECT

    Returns:
        The Dag, checked like a discovered one.
    """
    path = Path(path).resolve()
    dag = Dag(name=path.parent.name, folder=path.parent, path=path, project=default_project)
    found = dict(module_globals)
    if not any(value is flow for value in found.values()):
        found["__dags_flow__"] = flow  # a flow built in a function and passed in, not a global
    inspect_module(dag, found, default_project)
    return dag

