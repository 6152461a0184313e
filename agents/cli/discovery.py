"""Finding and loading DAGs: a DAG is a folder `dags/<name>/` holding one `.py` file with a Flow named `<name>`.

A DAG file is run the way prefect's script storage runs it (see `prefect.utilities.storage.
extract_flow_from_file`): as a module whose `__name__` is not `"__main__"`, so its registration and
hosting block does not fire. Each file gets a unique module name, so two DAGs never share globals.

A bad DAG file must not stop the others, so every file is first *vetted* in a forked child process under a
time limit (DAGS_LOAD_TIMEOUT): a file that loops or blocks, exits the interpreter (`os._exit`), crashes it
(abort, segfault), prints to stdout (which carries our commands' output) or leaves a non-daemon thread
running (which would keep the process from ever exiting) is reported as that DAG's problem, with its file.
All files are vetted at once, so a hanging one costs one time limit, not one per file.

Why vet in a child and then load in the parent, rather than ship the loaded flow back from the child: the
parent needs the real Flow object (registration serializes it, `trigger` checks parameters against it), and
a Flow does not reliably survive pickling (closures, executors, clients). Forking from a parent that already
imported prefect is cheap (milliseconds), so a file that passed is executed a second time in the parent,
only by the commands that need its Flow (`register`, `serve`, `trigger`); `check`, `list` and `init` take
what they need (problems, project, labels, schedule) from the child and never execute DAG code themselves.

A Ctrl-C must end the command and every child at any moment. Python raises KeyboardInterrupt at the next
bytecode it runs, and inside os.fork that is an at-fork hook (logging registers one), where Python prints the
exception and drops it: the interrupt was lost and the command waited out DAGS_LOAD_TIMEOUT. So SIGINT is
held (blocked, left pending) while a child is forked or reaped and recorded, and while the children are killed.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import re
import runpy
import select as select_mod
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from agents.errors import UserError
from agents.labels import flow_labels, label_problem
from agents.settings import LOAD_TIMEOUT

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
        schedule: a short description of the flow's schedule ("-" without one)
        problems: what is wrong with this DAG; empty when it is usable
    """

    name: str
    folder: Path
    path: Optional[Path] = None
    flow: Any = None
    project: str = ""
    labels: List[str] = field(default_factory=list)
    schedule: str = "-"
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


def _new_dag(folder: Path, default_project: str) -> Dag:
    """A Dag for `folder` with its file found (or the problem with the folder's files)."""
    dag = Dag(name=folder.name, folder=folder, project=default_project)
    try:
        dag.path = dag_file(folder)
    except ValueError as exc:
        dag.problems.append(str(exc))
    return dag


def load_in_process(folder: Path, default_project: str) -> Dag:
    """Loads one DAG folder in this process and checks it (no time limit: vet the file first).

    Args:
        folder: the DAG folder
        default_project: the project of a DAG without a module-level PROJECT

    Returns:
        The Dag with its flow; its `problems` say what is wrong, if anything.
    """
    dag = _new_dag(folder, default_project)
    if dag.path is None:
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
    dag.schedule = describe_schedule(dag.flow)
    for label in dag.labels:
        problem = label_problem(label)
        if problem:
            dag.problems.append(problem)


def load_dag(folder: Path, default_project: str, timeout: float = LOAD_TIMEOUT.default,
             load_flow: bool = True) -> Dag:
    """Vets one DAG folder in a child process, then (if it passed and `load_flow`) loads it here.

    Args:
        folder: the DAG folder
        default_project: the project of a DAG without a module-level PROJECT
        timeout: seconds the file may take to load (DAGS_LOAD_TIMEOUT)
        load_flow: False to take only what the child reports (no flow object, no DAG code run here)

    Returns:
        The Dag; its `problems` say what is wrong, if anything.
    """
    return _load_all([folder], default_project, timeout, load_flow)[0]


def discover(dags_folder: Path, default_project: str, timeout: float = LOAD_TIMEOUT.default,
             load_flows: bool = True) -> List[Dag]:
    """Loads every DAG folder (see `load_dag`) and checks the set (duplicate names across folders included).

    Args:
        dags_folder: the folder holding one folder per DAG
        default_project: the project of a DAG without a module-level PROJECT
        timeout: seconds each file may take to load (all files are vetted at once)
        load_flows: False to take only what the children report (for check, list and init)

    Returns:
        One Dag per folder, sorted by name.
    """
    dags = _load_all(dag_folders(dags_folder), default_project, timeout, load_flows)
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


def _load_all(folders: List[Path], default_project: str, timeout: float, load_flows: bool) -> List[Dag]:
    """Vets the folders' files in parallel children, then loads here those that passed (when asked)."""
    vetting: List[_Vetting] = []
    try:
        for folder in folders:
            _start_vetting(folder, default_project, timeout, vetting)
        dags = [_finish_vetting(job, timeout) for job in vetting]
    finally:
        # interrupted (Ctrl-C) or failed: no child may outlive us (a looping one would spin until its alarm);
        # a second Ctrl-C waits for this, which is short: a killed child ends at once
        with _sigint_held():
            for job in vetting:
                if job.running:
                    _kill_group(job.pid)
                    _reap(job)
    if not load_flows:
        return dags
    return [load_in_process(d.folder, default_project) if d.ok else d for d in dags]


class _Vetting:
    """A forked child loading one DAG file: its pid, the pipe it reports on (-1 once reaped), when it started."""

    def __init__(self, dag: Dag, pid: int = 0, report_fd: int = -1) -> None:
        self.dag = dag
        self.pid = pid
        self.report_fd = report_fd
        self.started = time.monotonic()

    @property
    def running(self) -> bool:
        """True while the child is ours to kill and reap."""
        return bool(self.pid) and self.report_fd >= 0


@contextlib.contextmanager
def _sigint_held() -> Iterator[Set[int]]:
    """Blocks SIGINT in this thread (the CLI's only one) for a few lines that must run whole; a Ctrl-C on the
    way stays pending and is raised as KeyboardInterrupt when they are done. Yields the mask to restore."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield previous
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_vetting(folder: Path, default_project: str, timeout: float, vetting: List[_Vetting]) -> None:
    """Forks a child that loads the folder's file and reports on a pipe (no child for a folder problem), and
    adds it to `vetting` before a Ctrl-C can interrupt; the child ends itself a second after `timeout` (the
    parent kills it at `timeout`, unless the parent died)."""
    dag = _new_dag(folder, default_project)
    if dag.path is None:
        vetting.append(_Vetting(dag))
        return
    # flushed now, or the child would inherit (and later write out) what is still buffered here
    sys.stdout.flush()
    sys.stderr.flush()
    with _sigint_held() as mask:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _vet_in_child(folder, default_project, write_fd, timeout, mask)
        os.close(write_fd)
        vetting.append(_Vetting(dag, pid, read_fd))


def _vet_in_child(folder: Path, default_project: str, report_fd: int, timeout: float, mask: Set[int]) -> None:
    """In the forked child: loads the file, checks what it left behind, writes one JSON line, exits."""
    code = 0
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the parent's mask, not the one held for the fork
        os.setpgid(0, 0)  # its own group: a timeout kills whatever the file started, too
        # a looping file must not outlive a parent killed before its deadline (SIGALRM's default ends us)
        signal.alarm(math.ceil(timeout) + 1)
        captured = tempfile.TemporaryFile()
        os.dup2(captured.fileno(), 1)  # stdout carries the commands' output: what the file prints is caught
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # a file waiting for input fails at once instead of hanging
        dag = load_in_process(folder, default_project)
        sys.stdout.flush()
        dag.problems.extend(_leftovers(captured))
        report = {"problems": dag.problems, "project": dag.project, "labels": dag.labels,
                  "schedule": dag.schedule}
        data = (json.dumps(report) + "\n").encode()
        while data:
            data = data[os.write(report_fd, data):]
    except BaseException:  # nothing may escape into the parent's code path (this is a fork of it)
        code = 70
    finally:
        os._exit(code)  # no atexit handlers, no waiting for the file's threads


def _leftovers(captured: Any) -> List[str]:
    """Problems with what loading left behind: output on stdout, non-daemon threads still running."""
    problems = []
    captured.seek(0)
    printed = captured.read(200).decode("utf-8", "replace").strip()
    if printed:
        problems.append(f"prints to stdout when loaded ({printed.splitlines()[0][:60]!r}...): stdout carries "
                        "the commands' output, so a DAG prints nothing at import; use logging, or move the "
                        "print under `if __name__ == \"__main__\":`")
    threads = [t.name for t in threading.enumerate()
               if t.is_alive() and not t.daemon and t is not threading.main_thread()]
    if threads:
        problems.append(f"leaves non-daemon thread(s) running after loading ({', '.join(threads)}): they would "
                        "keep every command from exiting; start them inside a task, or with daemon=True")
    return problems


def _finish_vetting(job: _Vetting, timeout: float) -> Dag:
    """Waits (until `timeout` after the child started) for a child's report and fills the Dag from it."""
    dag = job.dag
    if not job.pid:
        return dag
    line, finished = _read_report(job.report_fd, job.started + timeout)
    if not finished:
        _kill_group(job.pid)
    # a child that reported or closed its pipe is ending; one still running a second past its deadline is killed
    status = _reap_when_ended(job, max(job.started + timeout, time.monotonic()) + 1)
    if not finished:
        dag.problems.append(f"loading did not finish within {timeout:g}s ({LOAD_TIMEOUT.name}): the file loops or "
                            "blocks at import; move slow work into tasks, or raise DAGS_LOAD_TIMEOUT")
        return dag
    if line is None:
        dag.problems.append(_exit_problem(status))
        return dag
    report = json.loads(line)
    dag.problems.extend(report["problems"])
    dag.project = report["project"]
    dag.labels = report["labels"]
    dag.schedule = report["schedule"]
    return dag


def _read_report(fd: int, deadline: float) -> Tuple[Optional[str], bool]:
    """Reads the child's one-line report until the deadline.

    Returns:
        (the line, or None when the child closed the pipe without one; False when time ran out)
    """
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        # past the deadline, still look once without waiting: the children ran in parallel, so this one
        # may have reported long ago while an earlier one was being waited for
        ready, _, _ = select_mod.select([fd], [], [], max(remaining, 0))
        if not ready:
            if remaining <= 0:
                return None, False
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None, True  # the child ended without reporting
        data += chunk
    return data.split(b"\n", 1)[0].decode(), True


def _reap_when_ended(job: _Vetting, deadline: float) -> int:
    """Waits for a child that reported, closed its pipe or was killed to end (killing it if it still runs at
    the deadline), then reaps it; a Ctrl-C may interrupt the wait, never a reaping. Returns its wait status.

    It polls rather than block in waitpid: a Ctrl-C could land after a blocking waitpid reaped the child and
    before it was marked reaped, and a blocking waitpid with SIGINT held would not hear a Ctrl-C at all."""
    while True:
        with _sigint_held():
            pid, status = os.waitpid(job.pid, os.WNOHANG)
            if pid:
                _mark_reaped(job)
                return status
        if time.monotonic() >= deadline:
            _kill_group(job.pid)  # closed its pipe but still runs (its pid is ours until reaped)
        time.sleep(0.01)


def _reap(job: _Vetting) -> None:
    """Reaps a killed child (it ends at once) and marks it so; call it with SIGINT held."""
    os.waitpid(job.pid, 0)
    _mark_reaped(job)


def _mark_reaped(job: _Vetting) -> None:
    """Marks a reaped child so, in the same held stretch as its reaping: a Ctrl-C between the two would leave
    the cleanup a pid that is no longer ours to kill or wait for (it failed on it and left the other children)."""
    os.close(job.report_fd)
    job.report_fd = -1  # done: nothing left to clean up


def _kill_group(pid: int) -> None:
    """Kills a vetting child and everything in its process group."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _exit_problem(status: int) -> str:
    """The problem of a child that ended without reporting, from its wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return (f"loading crashed the interpreter ({name}): the file, or a library it calls at import, killed "
                "the process; find the failing call with `python -X faulthandler <file>`")
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return (f"loading ended the process with exit code {code} (os._exit or the like at import): remove the exit "
            "from the module level, or move it under `if __name__ == \"__main__\":`")


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

