"""Configuration: the env files in `env/` and re-applying prefect's configuration.

Prefect reads its configuration (`prefect.config`) once, when `prefect` is first imported, from
`PREFECT__...` environment variables. A DAG script imports prefect before it can call us, so after the
env files have been loaded into `os.environ`, `apply_prefect_config()` rebuilds prefect's configuration
in place. That is done here and nowhere else; agents.settings then parses the values (`settings.load`).

Precedence, highest first: the process environment, `env/local.env` (git-ignored: the user's overrides
and secrets), `env/defaults.env` (committed). The tutorial's `PREFECT_AUTH_KEY` still works: it becomes
`PREFECT__CLOUD__API_KEY` and selects the cloud backend, unless those are set explicitly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

from dotenv import dotenv_values

from agents.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
# Env files read in this order; a variable already set (by the process or an earlier file) is kept.
DEFAULTS_FILE = "defaults.env"
ENV_FILES = ("local.env", DEFAULTS_FILE)


def load_env_files(folder: Path) -> List[Path]:
    """Sets os.environ from `local.env` then `defaults.env`, never overriding a variable already set.

    The tutorial's PREFECT_AUTH_KEY is mapped once the user's own settings (process and `local.env`) are
    in, and before `defaults.env`, so that a key in `local.env` selects the cloud backend while the
    committed default backend ("server") cannot override it.

    Args:
        folder: the folder of env files (agents.settings.check_env_dir)

    Returns:
        The files that exist and were read.
    """
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
