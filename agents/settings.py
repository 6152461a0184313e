"""Settings: every `DAGS_*` variable the runtime reads, and the `PREFECT__...` values it uses, parsed once.

`load()` reads the env files (agents.config: precedence, the tutorial's key), checks prefect's logging level
before prefect can die on it, re-applies prefect's configuration and parses every variable below into one
`Settings` object, which the commands pass down to the code that uses each value. Nothing else in `agents/`
reads a `DAGS_*` variable, except what a flow-run process receives from its agent (agents.submission).

A bad value is a `UserError` naming the variable and the fix. The values every command uses (the durations,
the DAGs folder, the backend) stop any command at once; the agent's own (`Settings.agent`) stop only `serve`
and `start`, and the poke addresses (`Settings.poke_addresses`) only `trigger`, before they act: a bad
agent setting does not keep `list` from working.

| variable | value | default |
| --- | --- | --- |
| DAGS_ENV_DIR | the folder of the env files | <repo>/env |
| DAGS_FOLDER | where the DAG folders are; its parent holds the DAGs' data/ (agents.dagkit.datafiles) | <repo>/dags |
| DAGS_DEFAULT_PROJECT | the project of a DAG that sets no PROJECT | My Tests |
| DAGS_API_WAIT_TIMEOUT | seconds a command waits for the API (0: try once) | 120 |
| DAGS_LOAD_TIMEOUT | seconds a DAG file may take to load | 30 |
| DAGS_WATCH_POLL_INTERVAL | seconds between two polls of `trigger --wait` | 1 |
| DAGS_AGENT_MAX_POLL_INTERVAL | the longest sleep of an idle agent between two polls | 1.1 |
| DAGS_AGENT_MAX_RUNS | most runs an agent holds at once (`--limit` wins; 0: no limit) | 4 |
| DAGS_STRANDED_AFTER | seconds of an agent's silence after which its Submitted runs are re-queued | 30 |
| DAGS_AGENT_HEALTH_TIMEOUT | seconds without a successful poll after which an agent is unhealthy | 60 |
| DAGS_FLOW_RUN_FORK | 1: fork flow runs from a pre-imported process; 0: plain subprocesses | 1 |
| DAGS_DEAD_RUN_AFTER | a Running run's heartbeat age after which, its agent silent, another agent finishes it | 60 |
| DAGS_POKE_ADDRESSES | agent API addresses `trigger` pokes (`http://HOST:PORT`, comma-separated) | none |
| DASK_SCHEDULER_ADDRESS | the Dask scheduler of a DAG that chooses agents.dagkit.executors (read where the DAG file runs) | none: a local thread pool |
| PREFECT__LOGGING__LEVEL | prefect's logging level, checked | prefect's |
| PREFECT__BACKEND, PREFECT__CLOUD__API | the backend ("server" or "cloud") and its API (prefect's config) | server |
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Generic, List, Mapping, Optional, TypeVar
from urllib.parse import urlparse

from agents import config
from agents.errors import UserError

T = TypeVar("T")

ENV_DIR_ENV = "DAGS_ENV_DIR"
DAGS_FOLDER_ENV = "DAGS_FOLDER"
DEFAULT_PROJECT_ENV = "DAGS_DEFAULT_PROJECT"
DEFAULT_PROJECT = "My Tests"
BACKENDS = ("server", "cloud")
LOGGING_LEVEL_ENV = "PREFECT__LOGGING__LEVEL"


@dataclass(frozen=True)
class Duration:
    """A duration setting in seconds: its variable, its default and whether 0 is allowed (a bound of "try
    once"), else it must be > 0."""

    name: str
    default: float
    allow_zero: bool = False

    def read(self, environ: Optional[Mapping[str, str]] = None) -> float:
        """The value in the environment (default os.environ), or the default; a bad value is a UserError."""
        return seconds_from_env(self.name, self.default, self.allow_zero, environ)  # type: ignore[return-value]


# Default bound on waiting for the API when a command starts (`init --wait-timeout` defaults to it too):
# a host's `serve` or `start` launched before the API must still find it when the API is a minute late.
API_WAIT_TIMEOUT = Duration("DAGS_API_WAIT_TIMEOUT", 120.0, allow_zero=True)
# Seconds a DAG file may take to load. Loading only builds a Flow; the slowest repo DAG loads in about 2 s on
# a busy 2-core machine (pandas import), so 30 s flags a hang without false alarms.
LOAD_TIMEOUT = Duration("DAGS_LOAD_TIMEOUT", 30.0)
# Seconds between two polls of a watched run (`trigger --wait`); tests set it low.
WATCH_POLL_INTERVAL = Duration("DAGS_WATCH_POLL_INTERVAL", 1.0)
# Seconds; the longest sleep between two polls of an idle agent (prefect's own backoff goes 0.25 s .. 10 s).
# An idle agent's whole budget is one request a second: its polls (one request each, every 1.1 s with the
# request's own time: 0.9/s) and its recovery sweep (agents.agent.recovery: one request every 30 s when idle,
# which also checks that the API still knows the agent). Runs created elsewhere than `trigger` (the UI, the
# API) wait half of it on average before a poll finds them; `trigger` wakes the agents (agents.agent.waking).
MAX_POLL_INTERVAL = Duration("DAGS_AGENT_MAX_POLL_INTERVAL", 1.1)
# Seconds without a poll after which an agent's Submitted runs are re-queued.
STRANDED_AFTER = Duration("DAGS_STRANDED_AFTER", 30.0)
# Seconds without a successful poll after which the health endpoint fails.
HEALTH_TIMEOUT = Duration("DAGS_AGENT_HEALTH_TIMEOUT", 60.0)
# Seconds since a Running run's last heartbeat after which, its agent silent for DAGS_STRANDED_AFTER, another
# agent finishes it: two of prefect's 30 s heartbeat intervals. With the 10 s sweep, such a run is finished
# within about 70 s of its agent's death (README "When things fail").
DEAD_RUN_AFTER = Duration("DAGS_DEAD_RUN_AFTER", 60.0)
# Most runs one agent holds (Submitted or Running) at once. Two runs per core of a 2-core host:
# `scripts/benchmark.py --only burst` measures it (README "When things fail").
MAX_RUNS_ENV = "DAGS_AGENT_MAX_RUNS"
DEFAULT_MAX_RUNS = 4
# Whether flow runs are forked from a pre-imported process (agents.flowrun.forkrun) or plain subprocesses.
FORK_ENV = "DAGS_FLOW_RUN_FORK"
# Agent API addresses `trigger` pokes besides the agents registered on this machine (agents.agent.waking).
POKE_ENV = "DAGS_POKE_ADDRESSES"
# The Dask scheduler a DAG's tasks go to (agents.dagkit.executors), read in the process that executes the DAG
# file (the flow-run process): Dask's own name for it, which the stack sets in every agent (env/stack.env).
DASK_SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@dataclass(frozen=True)
class AgentSettings:
    """A DagsAgent's own settings (agents.agent.hosting), as `Settings.agent` checks them.

    Attributes:
        max_poll_interval: the longest sleep between two polls, in seconds (DAGS_AGENT_MAX_POLL_INTERVAL)
        max_runs: the most runs held at once; None for no limit (`--limit`, else DAGS_AGENT_MAX_RUNS)
        stranded_after: seconds of silence after which an agent's Submitted runs are re-queued
            (DAGS_STRANDED_AFTER)
        health_timeout: seconds without a successful poll after which the health endpoint fails
            (DAGS_AGENT_HEALTH_TIMEOUT)
        flow_run_fork: fork flow runs from a pre-imported process, else plain subprocesses (DAGS_FLOW_RUN_FORK)
        dead_run_after: seconds since a Running run's last heartbeat after which, its agent silent, another
            agent finishes it (DAGS_DEAD_RUN_AFTER)
    """

    max_poll_interval: float = MAX_POLL_INTERVAL.default
    max_runs: Optional[int] = DEFAULT_MAX_RUNS
    stranded_after: float = STRANDED_AFTER.default
    health_timeout: float = HEALTH_TIMEOUT.default
    flow_run_fork: bool = True
    dead_run_after: float = DEAD_RUN_AFTER.default


class Held(Generic[T]):
    """A setting parsed with the others but refused only by the command that uses it (`get`)."""

    def __init__(self, parse: Callable[[], T], fix: str) -> None:
        self._value: Optional[T] = None
        self._problem: Optional[str] = None
        try:
            self._value = parse()
        except UserError as exc:
            self._problem = f"{exc}: {fix}"

    def get(self) -> T:
        """The value; raises UserError (the variable and the fix) when it was bad."""
        if self._problem is not None:
            raise UserError(self._problem)
        return self._value  # type: ignore[return-value]


@dataclass
class Settings:
    """What the runtime needs to know, once the environment is loaded (`load`).

    Attributes:
        dags_folder: where the DAG folders are (DAGS_FOLDER, default <repo>/dags)
        default_project: the project of a DAG that sets no PROJECT (DAGS_DEFAULT_PROJECT)
        backend: "server" or "cloud" (PREFECT__BACKEND)
        api_url: the GraphQL endpoint prefect talks to (prefect's `cloud.api`)
        env_files: the env files that were read, in precedence order
        load_timeout: seconds a DAG file may take to load (DAGS_LOAD_TIMEOUT)
        api_wait_timeout: seconds a command waits for the API (DAGS_API_WAIT_TIMEOUT)
        watch_poll_interval: seconds between two polls of a watched run (DAGS_WATCH_POLL_INTERVAL)
        max_poll_interval: the longest sleep of an idle agent between two polls (DAGS_AGENT_MAX_POLL_INTERVAL)
        local_env: the user's env file, named in the fixes (<env dir>/local.env)
        held: the settings of `agent` and `poke_addresses`, parsed, refused only when used
    """

    dags_folder: Path
    default_project: str
    backend: str
    api_url: str
    env_files: List[Path]
    load_timeout: float = LOAD_TIMEOUT.default
    api_wait_timeout: float = API_WAIT_TIMEOUT.default
    watch_poll_interval: float = WATCH_POLL_INTERVAL.default
    max_poll_interval: float = MAX_POLL_INTERVAL.default
    local_env: Path = field(default_factory=lambda: env_dir() / "local.env")
    held: Dict[str, Held] = field(default_factory=lambda: hold_deferred(os.environ, env_dir() / "local.env"))

    def agent(self, limit: Optional[int] = None) -> AgentSettings:
        """The agent's settings, with `--limit` (when given) instead of DAGS_AGENT_MAX_RUNS; 0 for no limit.

        Raises:
            UserError: a bad value; the message names the variable and the fix.
        """
        return AgentSettings(
            max_poll_interval=self.max_poll_interval,
            max_runs=self.held["max_runs"].get() if limit is None else max_runs_from_env(limit),
            stranded_after=self.held["stranded_after"].get(),
            health_timeout=self.held["health_timeout"].get(),
            flow_run_fork=self.held["flow_run_fork"].get(),
            dead_run_after=self.held["dead_run_after"].get(),
        )

    def poke_addresses(self) -> List[str]:
        """DAGS_POKE_ADDRESSES as a list (empty when unset): `trigger` asks before creating a run.

        Raises:
            UserError: an entry is not `http://HOST:PORT`.
        """
        return self.held["poke_addresses"].get()


def hold_deferred(environ: Mapping[str, str], local_env: Path) -> Dict[str, Held]:
    """The settings that only some commands use, parsed now (`Held`)."""
    fix = fix_for(local_env)
    return {
        "max_runs": Held(lambda: max_runs_from_env(None, environ), fix),
        "stranded_after": Held(lambda: STRANDED_AFTER.read(environ), fix),
        "health_timeout": Held(lambda: HEALTH_TIMEOUT.read(environ), fix),
        "flow_run_fork": Held(lambda: fork_from_env(environ), fix),
        "dead_run_after": Held(lambda: DEAD_RUN_AFTER.read(environ), fix),
        "poke_addresses": Held(lambda: poke_addresses_from_env(environ), fix),
    }


def fix_for(local_env: Path) -> str:
    """Where a bad setting is fixed."""
    return f"fix it in the environment or {local_env}"


# --------------------------------------------------------------------------------------------- the parsers

def env_dir() -> Path:
    """Returns the folder holding the env files: DAGS_ENV_DIR, else <repo>/env."""
    return Path(os.environ.get(ENV_DIR_ENV) or config.REPO_ROOT / "env")


def check_env_dir() -> Path:
    """Returns `env_dir()`, refusing a DAGS_ENV_DIR that names no folder (a typo would silently drop every
    setting of its env files).

    Raises:
        UserError: DAGS_ENV_DIR is set to something that is not a folder.
    """
    folder = env_dir()
    if os.environ.get(ENV_DIR_ENV) and not folder.is_dir():
        raise UserError(f"{ENV_DIR_ENV}={os.environ[ENV_DIR_ENV]!r} is not a folder: point it at the folder "
                        "holding local.env and defaults.env, or unset it to use the repository's env/")
    return folder


def check_logging_level() -> None:
    """Refuses a PREFECT__LOGGING__LEVEL that Python's logging does not know (prefect fails on it at import
    with a traceback, and every flow run an agent starts would too). Safe to call before prefect is imported.

    Raises:
        UserError: the level is not a logging level name (DEBUG, INFO, WARNING, ERROR, CRITICAL) or number.
    """
    level = os.environ.get(LOGGING_LEVEL_ENV)
    # getLevelName maps a known name to its number; prefect passes the text as is (case-sensitive)
    if level is None or level.strip().isdigit() or isinstance(logging.getLevelName(level), int):
        return
    raise UserError(f"{LOGGING_LEVEL_ENV}={level!r} is not a logging level: use DEBUG, INFO, WARNING, ERROR or "
                    "CRITICAL (upper case), in the environment or env/local.env")


def seconds_from_env(name: str, default: Optional[float], allow_zero: bool = False,
                     environ: Optional[Mapping[str, str]] = None) -> Optional[float]:
    """A duration in seconds from the environment variable `name`, checked.

    Args:
        name: the variable, e.g. DAGS_API_WAIT_TIMEOUT
        default: the value when the variable is unset or empty
        allow_zero: whether 0 is a valid value (a bound of "try once"), else it must be > 0
        environ: where to read it; default os.environ

    Returns:
        The number of seconds, or `default`.

    Raises:
        UserError: the value is not a number, or out of range; the message names the variable.
    """
    raw = (os.environ if environ is None else environ).get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value):  # nan compares false with everything: a nan bound never ends a wait
        raise UserError(f"{name} must be a finite number of seconds, got {raw!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise UserError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {raw!r}")
    return value


def max_runs_from_env(limit: Optional[int] = None, environ: Optional[Mapping[str, str]] = None) -> Optional[int]:
    """The capacity limit: `limit` (`--limit`) if given, else DAGS_AGENT_MAX_RUNS, else the default;
    0 means no limit (None).

    Raises:
        UserError: not a whole number >= 0; the message names the variable.
    """
    if limit is None:
        raw = (os.environ if environ is None else environ).get(MAX_RUNS_ENV) or str(DEFAULT_MAX_RUNS)
        try:
            limit = int(raw)
        except ValueError:
            raise UserError(f"{MAX_RUNS_ENV} must be a whole number of runs (0 for no limit), got {raw!r}") from None
    if limit < 0:
        raise UserError(f"the agent's run limit ({MAX_RUNS_ENV} or --limit) must be >= 0, got {limit}")
    return limit or None


def fork_from_env(environ: Optional[Mapping[str, str]] = None) -> bool:
    """DAGS_FLOW_RUN_FORK: whether flow runs are forked (default) or plain subprocesses ("0").

    Raises:
        UserError: a value other than 1/0, true/false, yes/no, on/off.
    """
    given = (os.environ if environ is None else environ).get(FORK_ENV)
    raw = (given or "1").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise UserError(f"{FORK_ENV} must be 1 (fork flow runs from a pre-imported process, the default) or 0 "
                    f"(start each as a plain subprocess), got {given!r}")


def poke_addresses_from_env(environ: Optional[Mapping[str, str]] = None) -> List[str]:
    """DAGS_POKE_ADDRESSES as a list (empty when unset), checked.

    Raises:
        UserError: an entry is not `http://HOST:PORT`.
    """
    given = (os.environ if environ is None else environ).get(POKE_ENV, "")
    addresses = [a.strip().rstrip("/") for a in given.split(",") if a.strip()]
    for address in addresses:
        parsed = urlparse(address)
        try:
            port = parsed.port
        except ValueError:
            port = None
        if parsed.scheme != "http" or not parsed.hostname or port is None:
            raise UserError(f"{POKE_ENV} must list agent API addresses as http://HOST:PORT (comma-separated), "
                            f"got {address!r}")
    return addresses


def dask_scheduler_address(environ: Optional[Mapping[str, str]] = None) -> str:
    """DASK_SCHEDULER_ADDRESS, stripped; "" when unset or empty (a DAG's tasks then run on a local thread pool).
    agents.dagkit.executors checks it with distributed's own parser, which this module does not import."""
    return (os.environ if environ is None else environ).get(DASK_SCHEDULER_ENV, "").strip()


def dags_folder(environ: Optional[Mapping[str, str]] = None) -> Path:
    """DAGS_FOLDER, resolved; default the `dags/` of the repository this runtime is in."""
    return Path((os.environ if environ is None else environ).get(DAGS_FOLDER_ENV)
                or str(config.REPO_ROOT / "dags")).resolve()


def project_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The folder holding the DAGs folder, where a DAG's relative paths and its `data/` are: the repository
    of the DAGs, which the runtime running them need not be in (a copy of the DAGs run by an installed
    runtime reads and writes its own data/). agents.dagkit.datafiles confines paths to its data/."""
    return dags_folder(environ).parent


# ---------------------------------------------------------------------------------------------- loading

def load(folder: Optional[Path] = None) -> Settings:
    """Loads the env files, re-applies prefect's configuration and parses every setting.

    Args:
        folder: the folder of env files; defaults to `check_env_dir()`

    Returns:
        The settings.

    Raises:
        UserError: on an unknown backend, an unreadable env file or folder, a bad logging level or duration.
    """
    files = config.load_env_files(folder or check_env_dir())
    check_logging_level()
    durations = {}
    for duration in (API_WAIT_TIMEOUT, LOAD_TIMEOUT, WATCH_POLL_INTERVAL, MAX_POLL_INTERVAL):
        try:
            durations[duration.name] = duration.read()
        except UserError as exc:
            raise UserError(f"{exc}: {fix_for(env_dir() / 'local.env')}") from None
    config.apply_prefect_config()
    import prefect

    backend = str(prefect.config.backend)
    if backend not in BACKENDS:
        raise UserError(
            f"unknown backend {backend!r} (PREFECT__BACKEND): use 'server' (self-hosted Prefect Server, "
            f"the default) or 'cloud' (Prefect Cloud with PREFECT__CLOUD__API_KEY); set it in "
            f"{env_dir() / 'local.env'} or the environment"
        )
    return Settings(
        dags_folder=dags_folder(),
        default_project=os.environ.get(DEFAULT_PROJECT_ENV) or DEFAULT_PROJECT,
        backend=backend,
        api_url=str(prefect.config.cloud.api),
        env_files=files,
        load_timeout=durations[LOAD_TIMEOUT.name],
        api_wait_timeout=durations[API_WAIT_TIMEOUT.name],
        watch_poll_interval=durations[WATCH_POLL_INTERVAL.name],
        max_poll_interval=durations[MAX_POLL_INTERVAL.name],
        local_env=env_dir() / "local.env",
        held=hold_deferred(os.environ, env_dir() / "local.env"),
    )


# ---------------------------------------------------------------------------------------------- credentials

def missing_key(settings: Settings) -> Optional[str]:
    """Why the settings cannot reach Prefect Cloud for want of an API key, or None (server backend, or a key).

    Args:
        settings: the loaded settings

    Returns:
        The problem and its fix, naming no secret; None when there is none.
    """
    if settings.backend != "cloud":
        return None
    from prefect import Client

    # Client() reads the key from the config or ~/.prefect/auth.toml without a network call.
    if Client().api_key:
        return None
    return ("PREFECT__BACKEND is 'cloud' but no API key is set: put PREFECT__CLOUD__API_KEY=<your key> in "
            f"{settings.local_env} (git-ignored) or export it (the tutorial's PREFECT_AUTH_KEY works "
            "too); or use the self-hosted server with PREFECT__BACKEND=server")


def require_credentials(settings: Settings) -> None:
    """Fails before any network call when the cloud backend has no API key.

    Args:
        settings: the loaded settings

    Raises:
        UserError: cloud backend and no key in the environment, env files or prefect's auth file.
    """
    problem = missing_key(settings)
    if problem:
        raise UserError(problem)


def describe(settings: Settings) -> Dict[str, str]:
    """A printable summary of the settings: whether an API key is set, never the key itself.

    On the cloud backend without a key, an `api key` entry says so and how to fix it.
    """
    summary = {
        "backend": settings.backend,
        "api": settings.api_url,
        "dags folder": str(settings.dags_folder),
        "default project": settings.default_project,
        "env files": ", ".join(str(p) for p in settings.env_files) or "(none)",
    }
    if settings.backend == "cloud":
        problem = missing_key(settings)
        summary["api key"] = f"MISSING: {problem}" if problem else "set (not shown)"
    return summary
