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


@dataclass
class Settings:
    """What the runtime needs to know, once the environment is loaded.

    Attributes:
        dags_folder: where the DAG folders are (DAGS_FOLDER, default <repo>/dags)
        default_project: the project of a DAG that sets no PROJECT (DAGS_DEFAULT_PROJECT)
        backend: "server" or "cloud" (PREFECT__BACKEND)
        api_url: the GraphQL endpoint prefect talks to (prefect's `cloud.api`)
        env_files: the env files that were read, in precedence order
    """

    dags_folder: Path
    default_project: str
    backend: str
    api_url: str
    env_files: List[Path]


def env_dir() -> Path:
    """Returns the folder holding the env files: DAGS_ENV_DIR, else <repo>/env."""
    return Path(os.environ.get("DAGS_ENV_DIR") or REPO_ROOT / "env")


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
    folder = folder or env_dir()
    read = []
    for name in ENV_FILES:
        if name == DEFAULTS_FILE:
            _map_tutorial_key()
        path = folder / name
        if not path.is_file():
            continue
        read.append(path)
        for key, value in dotenv_values(path).items():
            # The process environment (and an earlier, higher-precedence file) wins.
            if value is not None and key not in os.environ:
                os.environ[key] = value
    return read


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
        UserError: on an unknown backend.
    """
    files = load_env_files(folder)
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
