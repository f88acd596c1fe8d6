"""The public health check."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from src import __version__

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Report liveness plus cheap facts (version, inventory age when known)."""
    settings = current_app.config["BAGBOARD_SETTINGS"]
    body = {"status": "ok", "version": __version__, "env": settings.env}
    body.update(current_app.extensions["bagboard.services"].health_facts())
    return jsonify(body)
