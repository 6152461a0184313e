"""Hosting: prefect LocalAgents that run the DAGs' flow runs in subprocesses of their container.

An agent is named after what it hosts and where (`<dag-or-labels>@<hostname>`), so every run shows
which container ran it, and passes `DAGS_AGENT_NAME=<agent name>` into the runs it spawns.

On top of prefect's LocalAgent, ours (see README "When things fail"):
- holds at most `max_runs` runs Submitted or Running at once (DAGS_AGENT_MAX_RUNS, `--limit`), leaving the
  rest Scheduled for other replicas;
- re-queues runs stranded by a silent agent (agents.agent.recovery) and starts each run through an ownership
  check (agents.submission), so a run is executed once even when an agent was only cut off;
- serves a health endpoint that fails after DAGS_AGENT_HEALTH_TIMEOUT seconds without a successful poll
  (agents.agent.health), and after a failed poll re-resolves the tenant and re-registers when the API lost them
  (an in-memory API restarted), so it recovers with no restart;
- polls every DAGS_AGENT_MAX_POLL_INTERVAL seconds at most when idle (default 1.1: one request a second,
  the recovery sweep included), and always serves prefect's `/api/poke`, which `trigger` calls so that a run
  it creates starts at once (agents.agent.waking).
"""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
from typing import Any, Dict, Iterable, List, Optional, Set
from urllib.parse import urlparse

from prefect.agent.agent import AGENT_WAKE_EVENT
from prefect.agent.local import LocalAgent
from prefect.engine.state import Submitted
from prefect.run_configs import LocalRun

from agents import submission as protocol
from agents.agent import deadruns, health, recovery, waking
from agents.config import REPO_ROOT
from agents.flowrun import forkrun
from agents.labels import covers
from agents.settings import AgentSettings

# The variable that tells a run which agent started it (for the DAG's own use: the README's example).
AGENT_NAME_ENV = "DAGS_AGENT_NAME"
DEFAULTS = AgentSettings()


class DagsAgent(LocalAgent):
    """A LocalAgent with a capacity limit, stranded-run recovery, ownership-checked flow runs, a truthful
    health endpoint and reconnection after an API restart (module doc).

    Args:
        max_poll_interval: the longest sleep between two polls for ready runs, in seconds (`poll_intervals`)
        max_runs: the most runs held at once; None for no limit
        stranded_after: seconds of silence after which an agent's Submitted runs are re-queued
        health_timeout: seconds without a successful poll after which the health endpoint fails
        flow_run_fork: fork flow runs from a pre-imported process (agents.flowrun.forkrun), else plain subprocesses
        dead_run_after: seconds since a Running run's last heartbeat after which, its agent silent, this agent
            finishes it (agents.agent.recovery); its flow-run processes hold a lease of half that
            (agents.flowrun.lease)
        **kwargs: LocalAgent's arguments
    """

    def __init__(self, max_poll_interval: float = DEFAULTS.max_poll_interval,
                 max_runs: Optional[int] = DEFAULTS.max_runs, stranded_after: float = DEFAULTS.stranded_after,
                 health_timeout: float = DEFAULTS.health_timeout, flow_run_fork: bool = DEFAULTS.flow_run_fork,
                 dead_run_after: float = DEFAULTS.dead_run_after, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._loop_intervals = poll_intervals(max_poll_interval)
        # the API `trigger` pokes (agents.agent.waking): where configured, else on loopback only, a free port
        self.agent_address = self.agent_address or waking.LOOPBACK_ADDRESS
        self._runtime_file = None
        self.max_runs = max_runs
        self.agent_id: Optional[str] = None
        self.registered_tenant: Optional[str] = None
        self._lost = threading.Event()  # the recovery sweep found that the API no longer knows this agent
        self.poll_health = health.PollHealth(health_timeout)
        # flow run id -> its flow-run process (a Popen or a forkrun.ForkedRun), and the submission ids this
        # agent wrote (agents.submission)
        self.run_processes: Dict[str, Any] = {}
        self.forker = forkrun.FlowRunForker(self.logger) if flow_run_fork else None
        self.submissions: Dict[str, str] = {}
        self._lock = threading.Lock()
        self.stranded = recovery.StrandedRuns(
            self.client, lambda: self.agent_id, self.name, self.labels, stranded_after, self.held_runs,
            self.poll_health.connected_for, self.logger, lost=self._lost.set, dead_after=dead_run_after)
        self.lease = dead_run_after / 2
        self._health_loop: List = []
        self._ended_before_tracked: Set[str] = set()  # see _deploy_flow_run_completed_callback

    # --- capacity --------------------------------------------------------------------------------------
    def held_runs(self) -> Set[str]:
        """Runs this agent holds now: being submitted, or with a live flow-run process."""
        with self._lock:
            for run_id, proc in list(self.run_processes.items()):
                if proc.poll() is not None:
                    del self.run_processes[run_id]
                    self.submissions.pop(run_id, None)
            return set(self.run_processes) | set(self.submitting_flow_runs)

    def _submit_deploy_flow_run_jobs(self, executor: Any) -> list:
        """prefect's submission of deploy jobs, then the runs whose job ended before prefect tracked them are
        let go (`_deploy_flow_run_completed_callback`)."""
        flow_runs = super()._submit_deploy_flow_run_jobs(executor)
        with self._lock:
            self.submitting_flow_runs.difference_update(self._ended_before_tracked)
            self._ended_before_tracked.clear()
        return flow_runs

    def _deploy_flow_run_completed_callback(self, _: Any, flow_run_id: str) -> None:
        """prefect's: the run is no longer being submitted. prefect adds a run to `submitting_flow_runs` only
        after it submitted the run's job and its callback: a job that ended first (a Submitted write refused
        at once, by the Submitted lock or because the run was taken) ran this callback before the add, which
        then kept the run "submitting" for ever, so this agent never deployed it again (a run lost). Such a
        run is let go once prefect's loop has added it."""
        with self._lock:
            if flow_run_id in self.submitting_flow_runs:
                self.submitting_flow_runs.remove(flow_run_id)
            else:
                self._ended_before_tracked.add(flow_run_id)

    def _get_flow_run_metadata(self, flow_run_ids: Iterable[str]) -> list:
        """prefect's query of the runs to submit (oldest first), cut to the free capacity."""
        flow_run_ids = list(flow_run_ids)
        if self.max_runs is None or not flow_run_ids:
            return super()._get_flow_run_metadata(flow_run_ids)
        free = self.max_runs - len(self.held_runs())
        if free <= 0:
            return []  # the rest stays Scheduled, for other replicas or a later poll
        return super()._get_flow_run_metadata(flow_run_ids)[:free]

    # --- polling, health and reconnection -----------------------------------------------------------------
    def _register_agent(self) -> str:
        self.agent_id = super()._register_agent()
        self.registered_tenant = self.client.tenant_id
        return self.agent_id

    def _get_ready_flow_runs(self, prefetch_seconds: int = 10) -> Set[str]:
        """prefect's poll, recorded for the health endpoint; after a failure, or when the recovery sweep
        found that the API no longer knows this agent, first makes sure the API knows this agent and its
        tenant.

        The sweep's check is needed because a lost tenant does not make polls fail: Prefect Server answers
        an empty queue for an unknown tenant, so an agent whose API lost its data (restarted in memory, or
        a database reset) between two polls, or while one poll was retrying, would otherwise poll an empty
        queue forever while looking healthy. It rides on the sweep's own request (at most 30 s apart), so an
        idle agent's only other requests are its polls.
        """
        try:
            if self.poll_health.failures or self._lost.is_set():
                self._lost.clear()
                self._reconnect()
            ids = super()._get_ready_flow_runs(prefetch_seconds)
        except Exception:
            self.poll_health.failed()
            raise
        self.poll_health.succeeded()
        return ids

    def _reconnect(self) -> None:
        """Re-resolves the tenant, and registers again when the API no longer knows this agent (an in-memory
        API restarted: a new tenant after `init`, no agents)."""
        self.client.tenant_id = None  # resolved again from the API (server) or the API key (cloud)
        tenant = self.client.tenant_id
        known = self.client.graphql(
            "query($id: uuid!) { agent(where: {id: {_eq: $id}}) { id } }", variables={"id": self.agent_id}
        ).data.agent if self.agent_id else []
        if tenant != self.registered_tenant or not known:
            self.logger.warning("the API no longer knows this agent (tenant %s, was %s): registering again",
                                tenant, self.registered_tenant)
            self.client.attach_headers({"X-PREFECT-AGENT-ID": self._register_agent()})

    def _start_agent_api_server(self) -> None:
        """Serves /api/health and /api/poke, and records the address for `trigger` (agents.agent.waking)."""
        port, self._health_loop = health.serve_health(self.agent_address, self.poll_health, self._poked)
        address = waking.local_address(urlparse(self.agent_address).hostname or "", port)
        self.logger.info("agent API (/api/health, /api/poke) at %s", address)
        self._runtime_file = waking.register(address, self.labels, self.name)

    def _poked(self, run_labels: Optional[List[str]]) -> bool:
        """Wakes the poll loop, unless the poke names the labels of a run this agent may not take."""
        if run_labels is not None and not covers(self.labels, run_labels):
            return False
        AGENT_WAKE_EVENT.set()
        return True

    def _stop_agent_api_server(self) -> None:
        waking.unregister(self._runtime_file)
        if self._health_loop:
            self._health_loop[0].add_callback(self._health_loop[0].stop)

    def on_startup(self) -> None:
        self.stranded.start()

    def on_shutdown(self) -> None:
        self.stranded.stop()

    # --- submission and the flow-run process -----------------------------------------------------------
    def _mark_flow_as_submitted(self, flow_run: Any) -> None:
        """Writes Submitted with a fresh submission id and reads it back (agents.submission.submit: a
        "State update failed" ValueError when the run is not this agent's), then lets prefect move the run's
        due task runs (retries) to Submitted.

        A run comes either Scheduled or Running with a task run due again: a retry, such as the one Prefect
        Server's zombie killer sets when the run's process died mid-task (prefect's agent would start it
        without touching the flow run). Such a run gets a Submitted state too, without the Running one inside,
        so that its new flow-run process moves it to Running again: Server's 30 s Submitted lock then lets
        one agent only take it, its heartbeat is fresh (Lazarus leaves it alone while the process starts), and
        the ownership check guards it like any other run."""
        submission = protocol.submit(self.client, flow_run, self.name, self.logger)
        if submission is None:
            return super()._mark_flow_as_submitted(flow_run)
        with self._lock:
            self.submissions[flow_run.id] = submission
        # the flow run is Submitted now: prefect then moves its Scheduled task runs (retries), if any
        flow_run.serialized_state = Submitted().serialize()
        super()._mark_flow_as_submitted(flow_run)

    def populate_env_vars(self, flow_run: Any, run_config: Optional[LocalRun] = None) -> dict:
        env = super().populate_env_vars(flow_run, run_config=run_config)
        env.pop("PREFECT__ENGINE__FLOW_RUNNER__DEFAULT_CLASS", None)  # agents.flowrun sets its own runner
        with self._lock:
            submission = self.submissions.get(flow_run.id, "")
        env.update(protocol.child_env(self.agent_id, submission, self.lease))
        return env

    def deploy_flow(self, flow_run: Any) -> str:
        """Starts `python -m agents.flowrun` (prefect's `execute flow-run` behind the ownership check): forked
        from the pre-imported fork server (agents.flowrun.forkrun), or as a plain subprocess."""
        from prefect.storage import Docker
        from prefect.serialization.storage import StorageSchema

        storage = StorageSchema().load(flow_run.flow.storage)
        if isinstance(storage, Docker):
            raise TypeError(f"Unsupported Storage type: {type(storage).__name__}")
        run_config = self._get_run_config(flow_run, LocalRun)
        env = self.populate_env_vars(flow_run, run_config=run_config)
        working_dir = run_config.working_dir if run_config is not None else None
        if working_dir and not os.path.isdir(working_dir):
            raise ValueError(f"Flow run {flow_run.id} has a nonexistent `working_dir` configured: {working_dir}")
        # stderr through a pipe of ours: forwarded like stdout, and its last lines kept for a death report
        read_end, write_end = os.pipe()
        tail = deadruns.StderrTail(read_end, _output_buffer() if self.show_flow_logs else None)
        try:
            # the run's process outlives the agent if the agent exits (as prefect's own LocalAgent does)
            proc = self.forker.start(env, working_dir, self.show_flow_logs, write_end) if self.forker else None
            if proc is None:
                proc = subprocess.Popen(forkrun.FLOW_RUN_ARGS,
                                        stdout=sys.stdout if self.show_flow_logs else subprocess.DEVNULL,
                                        stderr=write_end, env=env, cwd=working_dir)
        finally:
            os.close(write_end)  # the run holds its own copy: EOF once it (and what it started) ended
        with self._lock:
            self.run_processes[flow_run.id] = proc
        self.processes.add(proc)

        def ended() -> None:
            # a run slot is free when a process ends: poll at once, not after prefect's backoff (up to 10 s)
            AGENT_WAKE_EVENT.set()
            self._report_death(flow_run.id, proc, tail, env[protocol.SUBMISSION_ENV])

        forkrun.when_ended(proc, ended)
        return f"PID: {proc.pid}"

    def _report_death(self, flow_run_id: str, proc: Any, tail: deadruns.StderrTail, submission: str) -> None:
        """Finishes the run of a flow-run process that exited non-zero while its run is still Submitted or
        Running under this agent's submission (agents.agent.deadruns); never raises (it runs in the watcher thread)."""
        code = proc.returncode
        if not code:
            return  # 0: the process ended its run, or gave it up to another agent's submission
        try:
            if protocol.is_current(self.client, flow_run_id, submission):
                cause = f"flow-run process {proc.pid} {deadruns.exit_cause(code)}"
                deadruns.finish_dead_run(self.client, flow_run_id, cause, f"agent {self.name!r}", self.logger,
                                         details=deadruns.stderr_details(tail.text()))
            # else finished, or no longer this submission's (re-queued and taken by another agent)
        except Exception as exc:  # the API is away: the recovery sweep (this agent's or another's) finishes it
            self.logger.warning("flow run %s: could not report the death of its flow-run process %s (%s: %s)",
                                flow_run_id, proc.pid, type(exc).__name__, exc)
        deadruns.end_orphan_heartbeats(flow_run_id, self.logger)

    def start(self) -> None:
        """Polls for runs until interrupted, from the repository root: the runs it spawns inherit it as
        their working directory, where the relative script paths of `agents.cli.registration` resolve."""
        os.chdir(REPO_ROOT)
        if self.forker:
            self.forker.start_server()  # from here: it imports this folder's agents package
        super().start()


def _output_buffer() -> Optional[Any]:
    """The agent's stdout as a binary stream (where a run's stderr is forwarded), None when it has none."""
    return getattr(sys.stdout, "buffer", None)


def poll_intervals(max_interval: float) -> Dict[int, float]:
    """prefect's idle backoff (the sleep after the n-th poll in a row that found nothing: 0.25 s doubling
    to 10 s) capped at `max_interval`, or continued by one step of `max_interval` when it is longer."""
    steps = {k: min(v, max_interval) for k, v in LocalAgent._loop_intervals.items()}
    if max_interval > max(steps.values()):
        steps[len(steps)] = max_interval
    return steps


def agent_name(what: str) -> str:
    """`<what>@<hostname>`: in a container the hostname is the container id or its compose hostname."""
    return f"{what}@{socket.gethostname()}"


def labels_name(labels: Iterable[str]) -> str:
    """The `what` of a shared agent's default name: its labels joined by '+', or 'unlabelled'."""
    labels = sorted(labels)
    return "+".join(labels) if labels else "unlabelled"


def build_agent(labels: List[str], name: str, settings: AgentSettings, agent_address: Optional[str] = None,
                show_flow_logs: bool = True, env_vars: Optional[Dict[str, str]] = None) -> DagsAgent:
    """Creates (does not start) a LocalAgent for the given labels.

    Args:
        labels: the agent's labels (a run goes to it only if these include all the run's labels)
        name: the agent's name, shown on every run it submits
        settings: the agent's own settings, checked (agents.settings.Settings.agent)
        agent_address: where to serve the agent API, /api/health and /api/poke (`http://0.0.0.0:PORT`); None
            reads prefect's PREFECT__CLOUD__AGENT__AGENT_ADDRESS, else a free port on 127.0.0.1
        show_flow_logs: print the runs' output in the agent's output (visible in `docker compose logs`)
        env_vars: more variables for the runs

    Returns:
        The agent; call `.start()` to run it until interrupted.
    """
    runs_env = {AGENT_NAME_ENV: name}
    runs_env.update(env_vars or {})
    return DagsAgent(
        **dataclasses.asdict(settings),
        name=name,
        labels=sorted(labels),
        env_vars=runs_env,
        # the repo root on the runs' path, so a DAG may import shared code from the tree
        import_paths=[str(REPO_ROOT)],
        show_flow_logs=show_flow_logs,
        hostname_label=False,
        agent_address=agent_address or None,
    )
