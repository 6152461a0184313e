"""Login and CSRF: every state change is a POST carrying the session's CSRF token; with a password set,
every page but /login and /health asks for it first.

The session is Flask's signed cookie (HttpOnly, SameSite=Lax). A wrong password costs WRONG_PASSWORD_DELAY
seconds, served one at a time (a lock), so guesses run at most one per that delay whatever the clients.
"""
from __future__ import annotations

import hmac
import secrets
import threading
import time
from typing import Optional

from flask import Flask, abort, current_app, redirect, request, session, url_for
from werkzeug.security import check_password_hash

WRONG_PASSWORD_DELAY = 1.0
_wrong_password_lock = threading.Lock()
# Endpoints open without a login: the login form itself, the healthcheck, and static files.
OPEN_ENDPOINTS = {"auth.login", "health.health", "static"}


def csrf_token() -> str:
    """The session's CSRF token (made on first use); templates put it in every form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def password_matches(given: str) -> bool:
    """Checks `given` against DAGS_UI_PASSWORD or DAGS_UI_PASSWORD_HASH; a miss is slowed down."""
    settings = current_app.config["DASHBOARD"]
    if settings.password_hash:
        ok = check_password_hash(settings.password_hash, given)
    else:
        ok = hmac.compare_digest(given.encode(), (settings.password or "").encode())
    if not ok:
        with _wrong_password_lock:
            time.sleep(WRONG_PASSWORD_DELAY)
    return ok


def _guard() -> Optional[object]:
    settings = current_app.config["DASHBOARD"]
    if settings.login_required and not session.get("logged_in") and request.endpoint not in OPEN_ENDPOINTS:
        if request.method == "GET":
            return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
        abort(401)
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            abort(400, description="The form's security token (CSRF) is missing or out of date: reload the "
                                   "page and submit the form again.")
    return None


def init_app(app: Flask) -> None:
    """Installs the guard and the `csrf_token()` template function."""
    app.before_request(_guard)
    app.jinja_env.globals["csrf_token"] = csrf_token
