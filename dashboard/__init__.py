"""The dashboard: the offline stack's web UI (http://localhost:8080), pages named after Prefect UI 1.x's
Server pages, fed only by the Prefect Server GraphQL API, so it also runs in front of a real Server.

    python -m dashboard --api http://127.0.0.1:4200/graphql --port 8080

Flask (an app factory, one blueprint per area under routes/, Jinja2 templates autoescaped, static files
served by the app: no CDN, no build step).
"""
from __future__ import annotations

import logging
import time
from typing import Optional

from flask import Flask, Response, g, request

from dashboard.api import GraphQL
from dashboard.settings import Settings, load


def create_app(settings: Optional[Settings] = None) -> Flask:
    """The WSGI app for `settings` (default: from the environment, see dashboard.settings)."""
    from dashboard import errors, formatting, security
    from dashboard.routes import agents, auth, flow_runs, flows, health, home, projects

    settings = settings or load()
    app = Flask(__name__)
    app.config.update(
        DASHBOARD=settings,
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="dags_dashboard",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["graphql"] = GraphQL(settings.api_url, settings.api_key)
    security.init_app(app)
    formatting.init_app(app)
    errors.init_app(app)
    for module in (home, projects, flows, flow_runs, agents, auth, health):
        app.register_blueprint(module.bp)
    app.before_request(_start_clock)
    app.after_request(_log_request)
    return app


def _start_clock() -> None:
    g.started = time.perf_counter()


def _log_request(response: Response) -> Response:
    """One line per request: `DASHBOARD "GET /path" 200 12 ms` (the path without its query: a search's
    words stay out of the log)."""
    spent = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    logging.getLogger("dashboard.requests").info('DASHBOARD "%s %s" %d %.0f ms', request.method, request.path,
                                                 response.status_code, spent)
    return response
