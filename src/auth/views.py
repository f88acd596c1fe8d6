"""The login form and logout, handled by Flask so no Dash callback has to be public."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, redirect, render_template, request, session
from flask_login import current_user, login_user, logout_user

from src.auth.throttle import LoginThrottle
from src.auth.users import UserStore
from src.core.logging import get_logger

bp = Blueprint("auth", __name__, template_folder="templates")
log = get_logger("bagboard.audit")


def safe_next(target: str | None, default: str) -> str:
    """Return target if it is a same-origin path, else default."""
    if not target:
        return default
    # Browsers treat backslashes like slashes, so '/\\evil.example' would leave the site.
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def _client_address() -> str:
    return request.remote_addr or "unknown"


def _render(status: int = 200, *, error: str = "", username: str = "", next_url: str = "") -> Response:
    settings = current_app.config["BAGBOARD_SETTINGS"]
    store: UserStore = current_app.extensions["bagboard.users"]
    token = session.get("csrf_token") or secrets.token_urlsafe(32)
    session["csrf_token"] = token
    html = render_template(
        "login.html",
        assets=f"{settings.url_base_pathname}assets/",
        action=request.script_root + "/login",
        error=error,
        username=username,
        next_url=next_url,
        csrf_token=token,
        demo_hint=settings.env == "development" and store.has_demo_user(),
    )
    return Response(html, status=status, mimetype="text/html")


@bp.get("/login")
def login_form() -> Response:
    """Show the sign-in form (or go straight on when already signed in)."""
    home = current_app.config["BAGBOARD_SETTINGS"].url_base_pathname
    next_url = safe_next(request.args.get("next"), home)
    if current_user.is_authenticated:
        return redirect(next_url)
    return _render(next_url=next_url)


@bp.post("/login")
def login_submit() -> Response:
    """Check the credentials, with throttling, and start a session."""
    settings = current_app.config["BAGBOARD_SETTINGS"]
    store: UserStore = current_app.extensions["bagboard.users"]
    throttle: LoginThrottle = current_app.extensions["bagboard.throttle"]
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    next_url = safe_next(request.form.get("next"), settings.url_base_pathname)
    address = _client_address()
    keys = LoginThrottle.keys(username, address)

    if not secrets.compare_digest(request.form.get("csrf_token", ""), session.get("csrf_token", "") or "-"):
        log.warning("login_failed", user=username, address=address, reason="csrf")
        return _render(400, error="Your sign-in form expired. Please try again.", username=username, next_url=next_url)

    wait = throttle.retry_after(keys)
    if wait:
        log.warning("login_throttled", user=username, address=address, retry_after=wait)
        response = _render(
            429,
            error=f"Too many failed sign-ins. Try again in {max(1, wait // 60)} minute(s).",
            username=username,
            next_url=next_url,
        )
        response.headers["Retry-After"] = str(wait)
        return response

    user = store.authenticate(username, password)
    if user is not None and user.demo and settings.env != "development":
        log.warning("login_failed", user=username, address=address, reason="demo account outside development")
        user = None
    if user is None:
        throttle.record_failure(keys)
        log.warning("login_failed", user=username, address=address, reason="bad credentials")
        return _render(401, error="Unknown user name or wrong password.", username=username, next_url=next_url)

    throttle.reset(keys[:1])
    session.clear()  # a fresh session on login prevents session fixation
    login_user(user)
    log.info("login_succeeded", user=user.name, role=user.role.value, address=address)
    return redirect(next_url)


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    """End the session and go back to the sign-in form."""
    if current_user.is_authenticated:
        log.info("logout", user=current_user.name, address=_client_address())
    logout_user()
    session.clear()
    return redirect(request.script_root + "/login")
