"""Configuration: env files in `env/`, the backend check, and re-applying prefect's configuration.

Prefect reads its configuration (`prefect.config`) once, when `prefect` is first imported, from
`PREFECT__...` environment variables. A DAG script imports prefect before it can call us, so after the
env files have been loaded into `os.environ`, `apply_prefect_config()` rebuilds prefect's configuration
in place. That is done here and nowhere else.

Precedence, highest first: the process environment, `env/local.env` (git-ignored: the user's overrides
and secrets), `env/defaults.env` (committed). The tutorial's `PREFECT_AUTH_KEY` still works: it becomes
`PREFECT__CLOUD__API_KEY` and selects the cloud backend, unless those are set explicitly.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from dotenv import dotenv_values

from agents.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROJECT = "My Tests"
BACKENDS = ("server", "cloud")
# Env files read in this order; a variable already set (by the process or an earlier file) is kept.
DEFAULTS_FILE = "defaults.env"
ENV_FILES = ("local.env", DEFAULTS_FILE)
# Our durations (seconds), checked when the settings load so that a bad value stops a command before it acts
# (the API wait, DAG loading, `trigger --wait` polling, the agents' polling): name -> whether 0 is allowed.
# Each module that uses one keeps its default.
DURATIONS = {
    "DAGS_API_WAIT_TIMEOUT": True,
    "DAGS_LOAD_TIMEOUT": False,
    "DAGS_WATCH_POLL_INTERVAL": False,
    "DAGS_AGENT_MAX_POLL_INTERVAL": False,
}
# Seconds a DAG file may take to load (DAGS_LOAD_TIMEOUT). Loading only builds a Flow; the slowest repo DAG
# loads in about 2 s on a busy 2-core machine (pandas import), so 30 s flags a hang without false alarms.
DEFAULT_LOAD_TIMEOUT = 30.0
LOGGING_LEVEL_ENV = "PREFECT__LOGGING__LEVEL"


@dataclass
class Settings:
    """What the runtime needs to know, once the environment is loaded.

    Attributes:
        dags_folder: where the DAG folders are (DAGS_FOLDER, default <repo>/dags)
        default_project: the project of a DAG that sets no PROJECT (DAGS_DEFAULT_PROJECT)
        backend: "server" or "cloud" (PREFECT__BACKEND)
        api_url: the GraphQL endpoint prefect talks to (prefect's `cloud.api`)
        env_files: the env files that were read, in precedence order
        load_timeout: seconds a DAG file may take to load (DAGS_LOAD_TIMEOUT)
    """

    dags_folder: Path
    default_project: str
    backend: str
    api_url: str
    env_files: List[Path]
    load_timeout: float = DEFAULT_LOAD_TIMEOUT


def env_dir() -> Path:
    """Returns the folder holding the env files: DAGS_ENV_DIR, else <repo>/env."""
    return Path(os.environ.get("DAGS_ENV_DIR") or REPO_ROOT / "env")


def check_env_dir() -> Path:
    """Returns `env_dir()`, refusing a DAGS_ENV_DIR that names no folder (a typo would silently drop every
    setting of its env files).

    Raises:
        UserError: DAGS_ENV_DIR is set to something that is not a folder.
    """
    folder = env_dir()
    if os.environ.get("DAGS_ENV_DIR") and not folder.is_dir():
        raise UserError(f"DAGS_ENV_DIR={os.environ['DAGS_ENV_DIR']!r} is not a folder: point it at the folder "
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


def load_env_files(folder: Optional[Path] = None) -> List[Path]:
    """Sets os.environ from `local.env` then `defaults.env`, never overriding a variable already set.

    The tutorial's PREFECT_AUTH_KEY is mapped once the user's own settings (process and `local.env`) are
    in, and before `defaults.env`, so that a key in `local.env` selects the cloud backend while the
    committed default backend ("server") cannot override it.

    Args:
        folder: the folder of env files; defaults to `env_dir()`

    Returns:
        The files that exist and were read.
    """
    folder = folder or check_env_dir()
    read = []
    for name in ENV_FILES:
        if name == DEFAULTS_FILE:
            _map_tutorial_key()
        path = folder / name
        if not path.is_file():
            continue
        read.append(path)
        for key, value in _env_file_values(path).items():
            # The process environment (and an earlier, higher-precedence file) wins.
            if value is not None and key not in os.environ:
                os.environ[key] = value
    return read


def _env_file_values(path: Path) -> Dict[str, Optional[str]]:
    """The variables of one env file; a file that is not UTF-8 text is a UserError naming it."""
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise UserError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}): save it "
                          "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or remove that character") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}: fix its permissions or remove it") from None
    return dotenv_values(path, encoding="utf-8")


def _map_tutorial_key() -> None:
    """The tutorial's PREFECT_AUTH_KEY means: Prefect Cloud with this API key."""
    key = os.environ.get("PREFECT_AUTH_KEY")
    if not key:
        return
    os.environ.setdefault("PREFECT__CLOUD__API_KEY", key)
    os.environ.setdefault("PREFECT__BACKEND", "cloud")


def apply_prefect_config() -> None:
    """Rebuilds `prefect.config` from the current environment, in place, and refreshes the context.

    Modules such as `prefect.agent.agent` did `from prefect import config` at import time, so the
    existing Config object is updated rather than replaced.
    """
    import prefect
    from prefect import configuration

    fresh = configuration.load_configuration(
        path=configuration.DEFAULT_CONFIG,
        user_config_path=os.getenv("PREFECT__USER_CONFIG_PATH", "~/.prefect/config.toml"),
        backend_config_path=os.getenv("PREFECT__BACKEND_CONFIG_PATH", "~/.prefect/backend.toml"),
        env_var_prefix=configuration.ENV_VAR_PREFIX,
    )
    fresh = configuration.process_task_defaults(fresh)
    prefect.config.clear()
    prefect.config.update(fresh)
    prefect.context.update(fresh.get("context", {}))
    prefect.context.config = prefect.config.copy()


def seconds_from_env(name: str, default: Optional[float], allow_zero: bool = False) -> Optional[float]:
    """A duration in seconds from the environment variable `name`, checked.

    Args:
        name: the variable, e.g. DAGS_API_WAIT_TIMEOUT
        default: the value when the variable is unset or empty
        allow_zero: whether 0 is a valid value (a bound of "try once"), else it must be > 0

    Returns:
        The number of seconds, or `default`.

    Raises:
        UserError: the value is not a number, or out of range; the message names the variable.
    """
    raw = os.environ.get(name)
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


def load(folder: Optional[Path] = None) -> Settings:
    """Loads the env files, re-applies prefect's configuration and checks the backend value.

    Args:
        folder: the folder of env files; defaults to `env_dir()`

    Returns:
        The settings.

    Raises:
        UserError: on an unknown backend, an unreadable env file or folder, a bad logging level or duration.
    """
    files = load_env_files(folder)
    check_logging_level()
    durations = {}
    for name, allow_zero in DURATIONS.items():
        try:
            durations[name] = seconds_from_env(name, None, allow_zero=allow_zero)
        except UserError as exc:
            raise UserError(f"{exc}: fix it in the environment or {env_dir() / 'local.env'}") from None
    apply_prefect_config()
    import prefect

    backend = str(prefect.config.backend)
    if backend not in BACKENDS:
        raise UserError(
            f"unknown backend {backend!r} (PREFECT__BACKEND): use 'server' (self-hosted Prefect Server, "
            f"the default) or 'cloud' (Prefect Cloud with PREFECT__CLOUD__API_KEY); set it in "
            f"{env_dir() / 'local.env'} or the environment"
        )
    dags = os.environ.get("DAGS_FOLDER") or str(REPO_ROOT / "dags")
    return Settings(
        dags_folder=Path(dags).resolve(),
        default_project=os.environ.get("DAGS_DEFAULT_PROJECT") or DEFAULT_PROJECT,
        backend=backend,
        api_url=str(prefect.config.cloud.api),
        env_files=files,
        load_timeout=durations["DAGS_LOAD_TIMEOUT"] or DEFAULT_LOAD_TIMEOUT,
    )


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
            f"{env_dir() / 'local.env'} (git-ignored) or export it (the tutorial's PREFECT_AUTH_KEY works "
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
