"""GET /health: 200 when the API answers, 503 when not (the compose healthcheck and the API-down banner)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    ok = current_app.extensions["graphql"].reachable()
    return jsonify(api="ok" if ok else "unreachable"), 200 if ok else 503
