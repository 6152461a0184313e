"""Dead runs: a run whose flow-run process died is finished at once, by Prefect Server's own rules.

Prefect Server notices a dead flow-run process only through its heartbeat: after 10 minutes its zombie killer
sets the task run that was Running Retrying (retries left, flow run Running) or Failed, and its Lazarus
service reschedules a Submitted or Running run with no task run due or under way (at most 3 times, unless the
flow group switches Lazarus off). Until then the run shows Running, with no word of why it stopped.

An agent sees the death of a process it started the moment it happens (agents.flowrun.forkrun.when_ended): when a
flow-run process exits with a non-zero code (0 means it ended the run, or gave it up to another agent) while
its run is still Submitted or Running under this agent's submission, `finish_dead_run` applies the same rules
now, with the cause in every message (`exit_cause`: the signal and what it usually means, or the exit code,
plus the last lines the process wrote to stderr, `StderrTail`):
- each Running task run: Retrying when the flow run is Running and the task has retries left (its Retrying
  states so far < `max_retries`), due after its `retry_delay`; else Failed (the zombie killer's rule);
- then, when a task run was failed that way, the flow run is set Failed: that task's failure decides the run
  (its downstream tasks would only end TriggerFailed when Lazarus ran the flow again);
- else, when a task run is due or under way (the retry just set), the run stays Running: an agent's poll picks
  the due retry up, as after the zombie killer;
- else the run is rescheduled (Scheduled), so the tasks that had not started run once, as Lazarus does, unless
  it was already rescheduled `ATTEMPT_LIMIT` times (Lazarus's and ours together) or its flow group switches
  Lazarus (or heartbeats) off: then it is set Failed.
A log line on the run says what was done and why.

The same rules serve runs whose agent died too (agents.agent.recovery), with a cause naming the dead agent. Only
what Prefect Server and Cloud both offer is used: `flow_run_by_pk` with its task runs, `set_task_run_states`,
`set_flow_run_states` and `write_run_logs`.
"""
from __future__ import annotations

import collections
import datetime
import os
import re
import signal
import threading
from typing import IO, Any, Deque, Dict, List, Optional

import prefect

from agents.flowrun import lease

LOG_NAME = "agents.deadruns"
# Server's services.lazarus.resurrection_attempt_limit: how many times a run is rescheduled before it fails
ATTEMPT_LIMIT = 3
# the text of our reschedule message, to count our own attempts among the run's states
RESCHEDULED = "with no task run under way: rescheduled by"
# the last stderr lines kept for the state message, and at most this many characters of them
TAIL_LINES = 10
TAIL_CHARS = 2000

# what a signal that ends a flow-run process usually means
SIGNAL_MEANINGS = {
    signal.SIGKILL: "often the kernel's out-of-memory killer",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGBUS: "bus error: a bad memory access",
    signal.SIGABRT: "aborted, often by a failed check in C code",
    signal.SIGFPE: "arithmetic error in C code",
    signal.SIGILL: "illegal instruction",
    signal.SIGTERM: "asked to stop",
    signal.SIGINT: "interrupted",
    signal.SIGHUP: "its terminal or session ended",
    signal.SIGPIPE: "wrote to a closed pipe",
}

# task run states meaning work is due or under way (subclasses of Scheduled or Running: Lazarus's exclusion)
ACTIVE_TASK_STATES = frozenset(
    name for name, cls in vars(prefect.engine.state).items()
    if isinstance(cls, type) and issubclass(cls, (prefect.engine.state.Scheduled, prefect.engine.state.Running))
)

RUN_QUERY = """query($id: uuid!) {
  flow_run_by_pk(id: $id) {
    state version agent_id heartbeat times_resurrected
    flow { flow_group { settings } }
    states(where: {state: {_eq: "Scheduled"}}) { message }
    task_runs { id name version state task { name max_retries retry_delay } states { state } }
  }
}"""


def exit_cause(returncode: int) -> str:
    """What ended a process, from its exit code (-N: killed by signal N, as subprocess.Popen reports it)."""
    if returncode == lease.EXIT_CODE:
        return f"exited with code {returncode} (its lease expired: it could not reach the API)"
    if returncode >= 0:
        return f"exited with code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"was killed by signal {number}"
    meaning = SIGNAL_MEANINGS.get(number)
    return f"was killed by signal {number} ({name}{': ' + meaning if meaning else ''})"


class StderrTail:
    """Reads a flow-run process's stderr from a pipe in a daemon thread: forwards it to `out` (the agent's
    output, or nowhere) and keeps its last lines for the death report.

    Args:
        fd: the pipe's read end (this object closes it)
        out: a binary stream to forward to, or None
    """

    def __init__(self, fd: int, out: Optional[IO[bytes]]) -> None:
        self._fd = fd
        self._out = out
        self._lines: Deque[bytes] = collections.deque(maxlen=TAIL_LINES)
        self._partial = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name=f"stderr-{fd}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                if self._out is not None:
                    try:
                        self._out.write(chunk)
                        self._out.flush()
                    except (OSError, ValueError):
                        self._out = None
                with self._lock:
                    *lines, self._partial = (self._partial + chunk).split(b"\n")
                    self._lines.extend(lines)
                    self._partial = self._partial[-TAIL_CHARS:]
        except OSError:
            pass
        finally:
            os.close(self._fd)

    def text(self, settle: float = 0.5) -> str:
        """The last lines read, once the pipe is drained (EOF) or `settle` seconds passed: a grandchild that
        inherited stderr (a heartbeat process) may keep the pipe open after the process died."""
        self._thread.join(settle)
        with self._lock:
            lines = (list(self._lines) + ([self._partial] if self._partial else []))[-TAIL_LINES:]
        text = b"\n".join(line.rstrip(b"\r") for line in lines if line.strip()).decode("utf-8", "replace")
        return text[-TAIL_CHARS:]


def stderr_details(tail: str) -> str:
    """The last lines a process wrote to stderr, as the end of a state message."""
    return f" Last lines it wrote to stderr:\n{tail}" if tail else " It wrote nothing to stderr."


def interval_seconds(value: Any) -> float:
    """A task's retry_delay as the API answers it (Postgres's text form, e.g. "00:00:02", "1 day 01:00:00";
    or a number of seconds) in seconds; 0 for none."""
    if not value:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*(?:(-?\d+) days?,?\s*)?(-?)(\d+):(\d+):(\d+(?:\.\d+)?)\s*", str(value))
    if not match:
        return 0.0  # unreadable: retry at once rather than not at all
    days, sign, hours, minutes, seconds = match.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return int(days or 0) * 86400 + (-total if sign else total)


def _log(client: Any, flow_run_id: str, message: str, level: str, task_run_id: Optional[str] = None) -> None:
    entry = dict(flow_run_id=flow_run_id, name=LOG_NAME, message=message, level=level)
    if task_run_id:
        entry["task_run_id"] = task_run_id
    client.write_run_logs([entry])


def finish_dead_run(client: Any, flow_run_id: str, cause: str, who: str, logger: Any,
                    details: str = "", expect: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """Applies Server's zombie killer and Lazarus rules to a run whose flow-run process is dead (module doc).

    Args:
        client: a prefect Client
        flow_run_id: the run
        cause: why its process is gone, e.g. "flow-run process 12 was killed by signal 9 (...)" (`exit_cause`)
        who: the agent acting, e.g. "agent 'etl@host'", for the messages
        logger: where the agent logs what it did
        details: appended to every message (`stderr_details`)
        expect: fields of the run (version, agent_id, heartbeat) that must be as they were when its process
            was judged dead; when one changed (it beat, or another agent acted), nothing is written

    Returns:
        What was written: "Failed" or "Scheduled" (the flow run), "Retrying" (a task run; the run stays
        Running), or None (the run was no longer Submitted or Running, not as expected, or had a retry due).
    """
    from prefect.engine.state import Failed, Retrying, Scheduled

    run = client.graphql(RUN_QUERY, variables={"id": flow_run_id}).data.flow_run_by_pk
    if run is None or run.state not in ("Submitted", "Running"):
        return None
    if expect and any(run[key] != value for key, value in expect.items()):
        return None
    cause = cause[:1].upper() + cause[1:]
    now = datetime.datetime.now(datetime.timezone.utc)
    failed: List[str] = []
    retried: List[str] = []
    states = {task_run.id: task_run.state for task_run in run.task_runs}
    for task_run in run.task_runs:
        if task_run.state != "Running":
            continue
        retries = sum(1 for s in task_run.states if s.state == "Retrying")
        max_retries = (task_run.task.max_retries if task_run.task else 0) or 0
        name = task_run.name or (task_run.task.name if task_run.task else None) or task_run.id
        if run.state == "Running" and retries < max_retries:
            delay = interval_seconds(task_run.task.retry_delay)
            message = (f"{cause} while task {name!r} was running; {who} retries the task: retry {retries + 1} "
                       f"of {max_retries}.{details}")
            state = Retrying(message=message, run_count=retries + 1,
                             start_time=now + datetime.timedelta(seconds=delay))
        else:
            message = f"{cause} while task {name!r} was running; {who} marks the task run Failed.{details}"
            state = Failed(message=message)
        client.set_task_run_state(task_run_id=task_run.id, version=task_run.version, state=state)
        states[task_run.id] = type(state).__name__
        (failed if isinstance(state, Failed) else retried).append(repr(name))
        _log(client, flow_run_id, message, "ERROR", task_run.id)
        logger.warning("flow run %s: %s", flow_run_id, message)
    if failed:
        outcome = Failed(message=f"{cause} while task {', '.join(failed)} was running, with no retry left; "
                                 f"{who} marks the run Failed.{details}")
    elif any(state in ACTIVE_TASK_STATES for state in states.values()):
        # a retry is due (the one just set, or the zombie killer's): the run stays Running, an agent's poll
        # resumes it
        return "Retrying" if retried else None
    else:
        attempts = (run.times_resurrected or 0) + sum(RESCHEDULED in (s.message or "") for s in run.states)
        settings = (run.flow.flow_group.settings if run.flow and run.flow.flow_group else None) or {}
        switched_off = [key for key in ("lazarus_enabled", "heartbeat_enabled") if settings.get(key) is False]
        if switched_off:
            outcome = Failed(message=f"{cause}; its flow group sets {switched_off[0]}: false, so {who} marks the "
                                     f"run Failed instead of rescheduling it.{details}")
        elif attempts >= ATTEMPT_LIMIT:
            outcome = Failed(message=f"{cause}; the run was rescheduled {attempts} times already (limit "
                                     f"{ATTEMPT_LIMIT}), so {who} marks it Failed.{details}")
        else:
            outcome = Scheduled(message=f"{cause}, {RESCHEDULED} {who}, "
                                        f"attempt {attempts + 1} of {ATTEMPT_LIMIT}.{details}", start_time=now)
    client.set_flow_run_state(flow_run_id=flow_run_id, version=run.version, state=outcome)
    level = "INFO" if isinstance(outcome, Scheduled) else "ERROR"
    _log(client, flow_run_id, outcome.message, level)
    logger.warning("flow run %s: %s", flow_run_id, outcome.message)
    return type(outcome).__name__


def end_orphan_heartbeats(flow_run_id: str, logger: Any) -> int:
    """Ends prefect's `heartbeat flow-run` processes left beating for a run whose flow-run process died.

    In prefect's "process" heartbeat mode (plain subprocess runs) the flow-run process starts
    `python -m prefect heartbeat flow-run -i <id>`, which loops until its parent stops it: a parent killed by a
    signal never does, and the orphan would keep the dead run looking alive to Server forever. Only this
    user's processes are looked at. Returns how many were ended.
    """
    import psutil

    ended = 0
    uid = os.getuid()
    for proc in psutil.process_iter(["cmdline", "uids"]):
        cmdline = proc.info.get("cmdline") or []
        uids = proc.info.get("uids")
        if uids is None or uids.real != uid or flow_run_id not in cmdline:
            continue
        if "heartbeat" in cmdline and "flow-run" in cmdline:
            try:
                proc.terminate()
                ended += 1
            except psutil.Error:
                continue
            logger.info("flow run %s: ended its orphaned heartbeat process %s", flow_run_id, proc.pid)
    return ended
