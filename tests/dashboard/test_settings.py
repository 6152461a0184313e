"""The dashboard's settings and command line, without a browser: clear errors for bad settings, the session
secret kept where a restart finds it, the password hash command, and the browser rule of CI."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import create_app
from dashboard.settings import SettingsError, load
from prefect_emulator.testing import REPO_ROOT


def env_for(tmp_path: Path, **extra: str) -> dict:
    return {"DAGS_UI_SECRET_FILE": str(tmp_path / "secret"), **extra}


@pytest.mark.parametrize("extra, message", [
    ({"DAGS_UI_PASSWORD_HASH": "plain-text"}, "DAGS_UI_PASSWORD_HASH must be a Werkzeug password hash"),
    ({"DAGS_UI_TIMEZONE": "Mars/Olympus"}, "DAGS_UI_TIMEZONE='Mars/Olympus' is not a time zone"),
])
def test_a_bad_setting_is_named_with_its_fix(tmp_path: Path, extra: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load("http://127.0.0.1:4200", env_for(tmp_path, **extra))


def test_a_bad_api_url_stops_the_command_with_its_fix(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dashboard", "--api", "127.0.0.1:4200", "--port", "1"],
                          cwd=REPO_ROOT, env=dict(os.environ, DAGS_UI_SECRET_FILE=str(tmp_path / "s")),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "the API URL must start with http:// or https://, got '127.0.0.1:4200': pass --api" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_session_secret_is_made_once_and_kept_for_the_next_start(tmp_path: Path) -> None:
    first = load("http://127.0.0.1:4200", env_for(tmp_path)).secret_key
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert load("http://127.0.0.1:4200", env_for(tmp_path)).secret_key == first
    assert load("http://127.0.0.1:4200", env_for(tmp_path, DAGS_UI_SECRET_KEY="given")).secret_key == "given"


def test_an_unwritable_secret_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="cannot keep the dashboard's session secret in .*DAGS_UI_SECRET_FILE"):
        load("http://127.0.0.1:4200", {"DAGS_UI_SECRET_FILE": str(tmp_path / "file" / "secret")})


def test_hash_password_makes_a_hash_the_login_accepts(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "dashboard", "hash-password"], input="s3cret\n", cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    hashed = done.stdout.strip()
    assert hashed.startswith(("scrypt:", "pbkdf2:")) and "s3cret" not in hashed
    app = create_app(load("http://127.0.0.1:1", env_for(tmp_path, DAGS_UI_PASSWORD_HASH=hashed)))
    client = app.test_client()
    assert client.get("/").status_code == 302
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf"]
    assert client.post("/login", data={"password": "wrong", "csrf_token": token}).status_code == 401
    ok = client.post("/login", data={"password": "s3cret", "csrf_token": token, "next": "/agent"})
    assert ok.status_code == 302 and ok.headers["Location"] == "/agent"
    # the next page may not lead off the site
    client.post("/logout", data={"csrf_token": token})
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf"]
    away = client.post("/login", data={"password": "s3cret", "csrf_token": token, "next": "//evil.example/"})
    assert away.headers["Location"] == "/"


@pytest.mark.parametrize("ci", [True, False])
def test_browser_tests_fail_in_ci_and_skip_elsewhere_when_chromium_is_missing(tmp_path: Path, ci: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["DAGS_CHROMIUM"] = str(tmp_path / "no-chromium")
    if ci:
        env["CI"] = "true"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--maxfail=1",
                           "tests/dashboard/test_tutorial.py"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    if ci:
        assert done.returncode == 1, done.stdout
        assert "CI=true and no headless Chromium with its chromedriver" in done.stdout
    else:
        assert done.returncode == 0, done.stdout
        assert "skipped" in done.stdout and "failed" not in done.stdout
