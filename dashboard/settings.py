"""The dashboard's settings: command-line options over environment variables over defaults.

| variable | default | meaning |
| --- | --- | --- |
| `--api` / prefect's `PREFECT__SERVER__ENDPOINT` (`cloud.api`) | prefect's config | the GraphQL endpoint |
| `PREFECT__CLOUD__API_KEY` | none | sent as a bearer key (Prefect Cloud, an emulator with a key) |
| `DAGS_UI_PASSWORD` | none | with it, every page asks for this password first |
| `DAGS_UI_PASSWORD_HASH` | none | the same as a Werkzeug password hash (`python -m dashboard hash-password`) |
| `DAGS_UI_SECRET_KEY` | none | signs the session cookie and CSRF tokens |
| `DAGS_UI_SECRET_FILE` | `<prefect home>/dashboard-secret` | where a secret made at first start is kept |
| `DAGS_UI_TIMEZONE` | `UTC` | the time zone every timestamp is shown in |
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pendulum


class SettingsError(ValueError):
    """A setting is wrong; the message names it and the fix."""


@dataclass(frozen=True)
class Settings:
    api_url: str
    api_key: Optional[str]
    password: Optional[str]
    password_hash: Optional[str]
    secret_key: str
    timezone: str

    @property
    def login_required(self) -> bool:
        return bool(self.password or self.password_hash)


def prefect_api_url() -> str:
    """The API prefect's own config points at (PREFECT__SERVER__ENDPOINT, or cloud.api for Cloud)."""
    import prefect

    return str(prefect.config.cloud.api)


def secret_key(env: "os._Environ[str]") -> str:
    """DAGS_UI_SECRET_KEY, else the key kept in DAGS_UI_SECRET_FILE, made (mode 0600) on first start.

    Raises:
        SettingsError: the file can be neither read nor written.
    """
    if env.get("DAGS_UI_SECRET_KEY"):
        return env["DAGS_UI_SECRET_KEY"]
    if env.get("DAGS_UI_SECRET_FILE"):
        path = Path(env["DAGS_UI_SECRET_FILE"])
    else:
        import prefect

        path = Path(os.path.expanduser(str(prefect.config.home_dir))) / "dashboard-secret"
    try:
        if path.exists():
            key = path.read_text().strip()
            if key:
                return key
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key)
        return key
    except OSError as exc:
        raise SettingsError(f"cannot keep the dashboard's session secret in {path} ({exc.strerror}): set "
                            "DAGS_UI_SECRET_FILE to a writable file, or DAGS_UI_SECRET_KEY") from None


def load(api_url: Optional[str] = None, env: Optional["os._Environ[str]"] = None) -> Settings:
    """Settings from `api_url` (the --api option) and the environment.

    Raises:
        SettingsError: a bad API URL, password hash or time zone.
    """
    env = os.environ if env is None else env
    url = api_url or prefect_api_url()
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"the API URL must start with http:// or https://, got {url!r}: "
                            "pass --api http://HOST:4200/graphql")
    password_hash = env.get("DAGS_UI_PASSWORD_HASH") or None
    if password_hash and not password_hash.startswith(("pbkdf2:", "scrypt:")):
        raise SettingsError("DAGS_UI_PASSWORD_HASH must be a Werkzeug password hash (pbkdf2:... or scrypt:...): "
                            "make one with `python -m dashboard hash-password`")
    timezone = env.get("DAGS_UI_TIMEZONE") or "UTC"
    try:
        pendulum.timezone(timezone)
    except Exception:
        raise SettingsError(f"DAGS_UI_TIMEZONE={timezone!r} is not a time zone: use a name such as UTC or "
                            "Europe/Lisbon") from None
    return Settings(api_url=url, api_key=env.get("PREFECT__CLOUD__API_KEY") or None,
                    password=env.get("DAGS_UI_PASSWORD") or None, password_hash=password_hash,
                    secret_key=secret_key(env), timezone=timezone)
