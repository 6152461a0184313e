"""Flow-run processes forked from a pre-imported server: `python -m agents.flowrun` without its start-up.

A fresh flow-run process spends most of its CPU importing prefect (0.3-0.5 CPU-seconds), and prefect's
default heartbeat ("process" mode) starts a second python per run, `prefect heartbeat flow-run`, that
imports prefect again. An agent instead keeps one python's multiprocessing "forkserver": a single-threaded
process, started once, that has imported prefect and agents.flowrun (agents.flowrun.forkpreload). Each run is a
fork of it that first becomes what `python -m agents.flowrun` would have been (`run_forked`):

- os.environ is the run's environment exactly (replaced, not merged), the working directory is the run's,
  sys.path is a fresh interpreter's (the working directory, the run's PYTHONPATH, then the interpreter's
  own paths), sys.argv that of `python -m agents.flowrun`;
- prefect's configuration is loaded again from that environment (agents.config.apply_prefect_config),
  prefect.context is rebuilt from it, and prefect's loggers are configured again with a fresh log manager,
  whose CloudHandler ships this run's logs to the API;
- stdout goes where the agent sends a subprocess's (its stdout, or /dev/null), stderr to the agent's pipe
  for it (passed through the fork server: `ChildFd`), which forwards it and keeps its last lines;
- it runs agents.flowrun.child.main, then ends as the interpreter would (non-daemon threads joined, atexit
  handlers run, such as the one flushing prefect's last logs), with the same exit code.

Interpreter start-up settings other than PYTHONPATH (the other PYTHON* variables, the locale) are the fork
server's, i.e. the agent's.

Heartbeats: a forked run uses prefect's "thread" heartbeat mode (the same heartbeats, sent by a thread of
the run's process) unless PREFECT__CLOUD__HEARTBEAT_MODE is set in the run's environment or prefect's
configuration says other than the default "process": set PREFECT__CLOUD__HEARTBEAT_MODE=process (agent or
run_config env) for a DAG whose tasks hold the GIL for minutes (a long C call), which would starve the thread.

Failure paths:
- the server dies: multiprocessing starts a new one for the next run (logged); the runs it had forked go
  on, and the agent holds them until their process is gone (their exit code is then unknown: 255);
- a fork fails: that run starts as a plain subprocess (logged);
- a run's process is killed: its exit code is -signal, as subprocess.Popen reports it;
- the agent dies: each forked run holds the server's "alive" pipe, so the server ends with its last run
  and the runs outlive the agent, as plain subprocesses do; the agent, server and runs share one process
  group, so a signal to the group (Ctrl-C, `docker stop` through tini) reaches them all as before.

DAGS_FLOW_RUN_FORK=0 starts every run as a plain subprocess instead (`python -m agents.flowrun`, prefect's
heartbeat default).
"""
from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from multiprocessing import connection, forkserver, popen_forkserver
from typing import Any, Callable, Dict, List, Optional

HEARTBEAT_ENV = "PREFECT__CLOUD__HEARTBEAT_MODE"
# what the fork server imports once: everything a flow run needs before it loads its flow (and no more)
PRELOAD = ["agents.flowrun.forkpreload"]
# the command a forked run stands for (its handle's `args`)
FLOW_RUN_ARGS = [sys.executable, "-m", "agents.flowrun"]
# exit code of a run whose fork server died before it ended: nobody can tell its real one
UNKNOWN_EXIT = 255


def _pythonpath(env: Dict[str, str]) -> List[str]:
    return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


# the interpreter's own paths (stdlib, site-packages): sys.path without the script's folder and PYTHONPATH;
# computed once, in the fork server that imports this module
INTERPRETER_PATH = [p for p in sys.path[1:] if p not in _pythonpath(dict(os.environ))]


# --------------------------------------------------------------------------------------- in the fork server's child

def run_forked(env: Dict[str, str], cwd: Optional[str], show_logs: bool, stderr: Optional[int] = None) -> None:
    """The forked run: becomes `python -m agents.flowrun` with this environment, runs it, exits (module doc)."""
    _redirect_output(show_logs, stderr)
    os.environ.clear()
    os.environ.update(env)
    if cwd:
        os.chdir(cwd)  # else the agent's, as Popen(cwd=None); multiprocessing already moved there
    sys.path[:] = [os.getcwd()] + _pythonpath(env) + INTERPRETER_PATH
    from agents.flowrun import __main__ as entry, child as flowrun

    sys.argv[:] = [entry.__file__]
    time.tzset()  # TZ and TMPDIR are read once per process
    tempfile.tempdir = None
    _fresh_prefect()
    os._exit(_exit_code(flowrun.main))


def _redirect_output(show_logs: bool, stderr: Optional[int]) -> None:
    """stdout to the server's stdout (the agent's), or to /dev/null; stderr to the agent's pipe `stderr`
    (agents.agent.deadruns.StderrTail forwards it the same way), else with stdout."""
    if not show_logs:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    if stderr is None:
        os.dup2(1, 2)
        return
    os.dup2(stderr, 2)
    os.close(stderr)


def _fresh_prefect() -> None:
    """prefect's configuration, context and loggers as a fresh import in this environment makes them."""
    import prefect
    from prefect.utilities import logging as prefect_logging

    from agents.config import apply_prefect_config

    old_extra = list(prefect.config.logging.get("extra_loggers", []))
    apply_prefect_config()
    if HEARTBEAT_ENV not in os.environ and prefect.config.cloud.heartbeat_mode == "process":
        prefect.config.cloud.heartbeat_mode = "thread"  # no second python per run (module doc)
    prefect.context.clear()
    prefect.context.__init__()  # what prefect.utilities.context builds at import, from the new config
    for name in ["prefect"] + old_extra:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
    prefect.context.logger = prefect_logging.prefect_logger = prefect_logging.configure_logging()
    prefect_logging.configure_extra_loggers()
    prefect_logging.LOG_MANAGER = prefect_logging.LogManager()


def _exit_code(main: Any) -> int:
    """Runs `main` and ends as the interpreter ends a script; returns the process's exit code."""
    code = 0
    interrupted = False
    try:
        main()
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except KeyboardInterrupt:
        traceback.print_exc()
        interrupted = True
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads, as at interpreter exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if interrupted:  # python ends by SIGINT after an uncaught KeyboardInterrupt: exit code -2
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return code


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


# --------------------------------------------------------------------------------------------- in the agent

class ForkedRun:
    """A forked flow-run process, with the part of subprocess.Popen that agents use: pid, args,
    returncode, poll(), wait(), send_signal(), terminate(), kill()."""

    def __init__(self, popen: popen_forkserver.Popen, logger: logging.Logger) -> None:
        self._popen = popen
        self._logger = logger
        self._lock = threading.Lock()  # the agent polls from its poll loop and its heartbeat thread
        self._orphaned = False
        self.pid: int = popen.pid
        self._start_time = _start_time(self.pid)
        self.args = FLOW_RUN_ARGS
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        """The exit code once the process ended, else None."""
        with self._lock:
            if self.returncode is None:
                self.returncode = self._orphan_code() if self._orphaned else self._reported_code()
            return self.returncode

    def _reported_code(self) -> Optional[int]:
        """The exit code the fork server reports (it waits for its children), None while running."""
        if not connection.wait([self._popen.sentinel], 0):
            return None
        try:
            code = forkserver.read_signed(self._popen.sentinel)
        except (OSError, EOFError):  # the server died before the run ended: the run goes on as an orphan
            self._orphaned = True
            self._logger.warning("the fork server died while flow-run process %s ran: the run goes on; "
                                 "its exit code will be unknown (%s)", self.pid, UNKNOWN_EXIT)
            return self._orphan_code()
        finally:
            self._popen.close()  # the sentinel's file descriptors
        return code

    def _orphan_code(self) -> Optional[int]:
        return None if process_alive(self.pid, self._start_time) else UNKNOWN_EXIT

    def wait(self, timeout: Optional[float] = None) -> int:
        """Waits until the process ends; raises subprocess.TimeoutExpired after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            sentinel = self._sentinel_copy()
            if sentinel is None:  # an orphan: no one reports its end, look again
                time.sleep(min(0.5, left) if left is not None else 0.5)
                continue
            try:  # readable when the server reports the exit code, or dies
                connection.wait([sentinel], left)
            finally:
                os.close(sentinel)
        return self.returncode  # type: ignore[return-value]

    def _sentinel_copy(self) -> Optional[int]:
        """A duplicate of the pipe the server reports on, to block on outside the lock (another thread's
        poll() may close the original, and its number be reused, at any moment); None for an orphan or once
        the exit code is known."""
        with self._lock:
            if self._orphaned or self.returncode is not None:
                return None
            return os.dup(self._popen.sentinel)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ChildFd:
    """A file descriptor of the agent handed to a forked run: the fork server passes it over its socket, and
    the run's `run_forked` receives it as an int (multiprocessing's own way of passing a pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple:
        from multiprocessing import reduction

        # called while popen_forkserver.Popen pickles the run: the descriptor joins the ones sent with it
        return _detach, (reduction.DupFd(self.fd),)


def _detach(dup: Any) -> int:
    return dup.detach()


def when_ended(proc: Any, callback: Callable[[], None]) -> None:
    """Calls `callback` from a daemon thread as soon as `proc` (a Popen or a ForkedRun) has ended."""
    def watch() -> None:
        proc.wait()
        callback()

    threading.Thread(target=watch, name=f"flow-run-{proc.pid}-watch", daemon=True).start()


def _start_time(pid: int) -> Optional[str]:
    """The process's start time (/proc/PID/stat field 22), to tell it from a later process with its pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int, start_time: Optional[str] = None) -> bool:
    """Whether process `pid` (started at `start_time`, when known) still runs (a zombie does not); another
    user's process counts as running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return start_time is None
    return fields[0] != "Z" and (start_time is None or fields[19] == start_time)


class FlowRunForker:
    """Forks flow runs from this process's fork server (one per agent process, started on first use or by
    `start_server`).

    Args:
        logger: where the fork server's restarts and fallbacks are logged
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD)
        self._server_pid: Optional[int] = None
        self._lock = threading.Lock()

    def start_server(self) -> None:
        """Starts the fork server now (it imports prefect: a second or so), so the first run does not wait."""
        try:
            forkserver.ensure_running()
        except Exception as exc:
            self.logger.warning("could not start the fork server (%s: %s): it is tried again at the first run",
                                type(exc).__name__, exc)
            return
        self._note_server()

    def start(self, env: Dict[str, str], cwd: Optional[str], show_logs: bool,
              stderr: Optional[int] = None) -> Optional[ForkedRun]:
        """Forks a flow run with this environment and working directory, its stderr to the pipe `stderr` when
        given (the caller closes its own copy); None when that failed (logged: start it as a plain subprocess)."""
        args = (env, cwd, show_logs, None if stderr is None else ChildFd(stderr))
        process = self._context.Process(target=run_forked, args=args, name="flow-run")
        try:
            # not process.start(): multiprocessing would join (or, daemonic, kill) its children when the agent
            # exits, and flow runs outlive their agent
            popen = popen_forkserver.Popen(process)
        except Exception as exc:
            self.logger.warning("could not fork flow-run process (%s: %s): starting it as a plain subprocess",
                                type(exc).__name__, exc)
            return None
        self._note_server()
        return ForkedRun(popen, self.logger)

    def _note_server(self) -> None:
        """Logs the fork server's pid when it is new: at start, and after multiprocessing replaced a dead one."""
        pid = getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None)
        with self._lock:
            if pid == self._server_pid:
                return
            if self._server_pid is None:
                self.logger.info("flow runs are forked from fork server pid %s", pid)
            else:
                self.logger.warning("the fork server (pid %s) had died: flow runs are now forked from a new "
                                    "one, pid %s", self._server_pid, pid)
            self._server_pid = pid
