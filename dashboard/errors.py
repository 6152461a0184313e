"""Error pages: what happened and what to do, never a traceback. An unreachable API gets the banner page,
which reloads itself once the API answers again (static/live.js)."""
from __future__ import annotations

from flask import Flask, current_app, render_template
from werkzeug.exceptions import HTTPException

from dashboard.api import ApiDown, ApiError


class NotFound(Exception):
    """A run, flow, project or agent id that the API does not know (deleted, or mistyped)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what} {ident} was not found")
        self.what = what
        self.ident = ident


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiDown)
    def api_down(exc: ApiDown):
        return render_template("error.html", title="The API does not answer", api_down=True,
                               message=str(exc), hint="Check that the API (the emulator or Prefect Server) is "
                               "running; this page reloads by itself when it answers again."), 503

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return render_template("error.html", title="The API refused the request", message=str(exc),
                               hint="Go back, check what you entered and try again."), 502

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return render_template("error.html", title=f"{exc.what.capitalize()} not found",
                               message=f"There is no {exc.what} with the id {exc.ident}: it may have been "
                               "deleted, or the link is wrong.", hint="Go to the Dashboard to find it again."), 404

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        hints = {404: "Use the menu to find the page you want.",
                 401: "Log in first, then submit the form again.",
                 405: "Use the page's buttons: changes are made with forms only."}
        return render_template("error.html", title=f"{exc.code} {exc.name}", message=exc.description,
                               hint=hints.get(exc.code, "Go back and try again.")), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        current_app.logger.exception("unexpected error")
        return render_template("error.html", title="Something went wrong",
                               message=f"The dashboard hit an unexpected {type(exc).__name__}.",
                               hint="Reload the page; if it persists, see the dashboard's log."), 500
