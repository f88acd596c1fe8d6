"""One before_request wall: only the login page, health and static files are public."""

from __future__ import annotations

from urllib.parse import quote

import structlog
from flask import Flask, Response, jsonify, redirect, request
from flask_login import current_user


def public_paths(url_base: str) -> tuple[set[str], tuple[str, ...]]:
    """Return the exact public paths and the public path prefixes."""
    exact = {"/login", "/logout", "/healthz", "/favicon.ico", f"{url_base}_favicon.ico"}
    prefixes = (f"{url_base}assets/",)
    return exact, prefixes


def is_dash_internal(path: str, url_base: str) -> bool:
    """Tell whether path is one of Dash's own endpoints (layout, callbacks, bundles, reload)."""
    return path.startswith((f"{url_base}_dash-", f"{url_base}_reload-hash"))


def register_auth_wall(server: Flask, url_base: str) -> None:
    """Answer 401 JSON for Dash endpoints and redirect page loads without a session."""
    exact, prefixes = public_paths(url_base)

    @server.before_request
    def require_session() -> Response | None:
        path = request.path
        if path in exact or path.startswith(prefixes):
            return None
        if current_user.is_authenticated:
            structlog.contextvars.bind_contextvars(user=current_user.name)
            return None
        if is_dash_internal(path, url_base) or request.method != "GET" or request.is_json:
            response = jsonify(error="authentication required", login=request.script_root + "/login")
            response.status_code = 401
            return response
        target = request.full_path if request.query_string else path
        return redirect(f"{request.script_root}/login?next={quote(target, safe='/')}")
