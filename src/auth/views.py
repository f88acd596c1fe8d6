"""The login form and logout, handled by Flask so no Dash callback has to be public."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, session
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from src.auth.sessions import SessionRegistry
from src.auth.throttle import LoginThrottle
from src.auth.users import UserStore
from src.core.logging import get_logger

bp = Blueprint("auth", __name__, template_folder="templates")
log = get_logger("bagboard.audit")

DEVICE_COOKIE = "bagboard_device"
DEVICE_MAX_AGE = 30 * 24 * 3600
DEVICE_MAX_NAMES = 5
# The login form is a few short fields: anything larger is not a sign-in.
LOGIN_MAX_BYTES = 16 * 1024


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


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="bagboard-known-device")


def _known_device() -> dict:
    """Return this browser's signed known-device record ({'id': ..., 'names': [...]}) or an empty one."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if raw:
        try:
            record = _device_serializer().loads(raw, max_age=DEVICE_MAX_AGE)
        except BadSignature:
            record = None
        if isinstance(record, dict) and isinstance(record.get("id"), str) and isinstance(record.get("names"), list):
            return record
    return {}


def _remember_device(response: Response, record: dict, name: str) -> None:
    """Mark this browser as known for name (it then escapes lockouts aimed at the name or the address)."""
    others = [n for n in record.get("names", []) if n != name]
    names = [*others[-(DEVICE_MAX_NAMES - 1) :], name]
    value = _device_serializer().dumps({"id": record.get("id") or secrets.token_urlsafe(16), "names": names})
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        path="/",
    )


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
    sessions: SessionRegistry = current_app.extensions["bagboard.sessions"]
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    next_url = safe_next(request.form.get("next"), settings.url_base_pathname)
    address = _client_address()
    device = _known_device()
    known = device.get("id") if username in device.get("names", []) else None
    keys = LoginThrottle.limits(username, address, known)

    if not secrets.compare_digest(request.form.get("csrf_token", ""), session.get("csrf_token", "") or "-"):
        log.warning("login_failed", user=username, address=address, reason="csrf")
        return _render(400, error="Your sign-in form expired. Please try again.", username=username, next_url=next_url)

    wait = throttle.retry_after(keys)
    if wait:
        log.warning("login_throttled", user=username, address=address, retry_after=wait, known_device=bool(known))
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
    session["sid"] = sessions.create(user)
    session.permanent = True  # the cookie may outlive the browser; the server ends it (idle, lifetime)
    login_user(user)
    log.info("login_succeeded", user=user.name, role=user.role.value, address=address)
    response = redirect(next_url)
    _remember_device(response, device, user.name)
    return response


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Response:
    """End every session of the user on the server (copied cookies too, on every device) and show the sign-in form."""
    # A link on another site (a cross-site navigation) ends only this browser's session, so nobody can sign a user
    # out everywhere.
    return _sign_out(everywhere=_same_origin())


def _sign_out(everywhere: bool) -> Response:
    """End this browser's session (and with everywhere, every session of the user) and go to the sign-in form."""
    sessions = current_app.extensions["bagboard.sessions"]
    if current_user.is_authenticated:
        if everywhere:
            sessions.revoke_all(current_user.name)
        log.info("logout", user=current_user.name, address=_client_address(), everywhere=everywhere)
    sessions.end(session.get("sid"))
    logout_user()
    session.clear()
    return redirect(request.script_root + "/login")


def _same_origin() -> bool:
    """Tell whether the browser says this request came from one of our own pages."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere() -> Response:
    """End every session of the signed-in user, on every browser, worker and host."""
    if not _same_origin():
        abort(403, "sign out everywhere must come from bagboard's own page")
    return _sign_out(everywhere=True)


@bp.before_app_request
def limit_login_body() -> None:
    """Give the login form its own small body limit (413 beyond it)."""
    if request.path == "/login" and request.method == "POST":
        request.max_content_length = LOGIN_MAX_BYTES
