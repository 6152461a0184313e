"""The optional login (DAGS_UI_PASSWORD or DAGS_UI_PASSWORD_HASH) and logout."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from dashboard.security import password_matches

bp = Blueprint("auth", __name__)


def _safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no other host) may be the page after login."""
    return target if target.startswith("/") and not target.startswith("//") else url_for("home.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if not current_app.config["DASHBOARD"].login_required:
        return redirect(url_for("home.dashboard"))
    error = None
    if request.method == "POST":
        if password_matches(request.form.get("password", "")):
            csrf = session.get("csrf")
            session.clear()
            session["logged_in"] = True
            session["csrf"] = csrf
            return redirect(_safe_next(request.form.get("next", "/")))
        error = "Wrong password."
    return render_template("login.html", error=error, next=request.values.get("next", "/")), 401 if error else 200


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"))
