"""Authentication (Flask-Login, users file, throttling) and role checks."""

from __future__ import annotations

from cachelib import BaseCache
from flask import Flask, current_app, session

from src.auth.guard import AccessDenied, check_role, current_actor, require_role
from src.auth.roles import Role
from src.auth.sessions import SessionRegistry
from src.auth.throttle import LoginThrottle
from src.auth.users import User, UserStore, UserStoreError
from src.auth.views import bp as auth_blueprint
from src.auth.wall import register_auth_wall
from src.config import Settings
from src.core.extensions import login_manager
from src.core.logging import get_logger

log = get_logger("bagboard.audit")

__all__ = [
    "AccessDenied",
    "LoginThrottle",
    "Role",
    "SessionRegistry",
    "User",
    "UserStore",
    "UserStoreError",
    "check_role",
    "current_actor",
    "init_auth",
    "require_role",
]


def init_auth(server: Flask, settings: Settings, shared_cache: BaseCache) -> None:
    """Wire Flask-Login, the users file, throttling, the login views and the wall."""
    store = UserStore(settings.users_file)
    server.extensions["bagboard.users"] = store
    server.extensions["bagboard.throttle"] = LoginThrottle(shared_cache)
    server.extensions["bagboard.sessions"] = SessionRegistry(
        shared_cache,
        idle_seconds=settings.session_idle_hours * 3600,
        lifetime_seconds=settings.session_lifetime_hours * 3600,
    )

    login_manager.init_app(server)
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)
    server.register_blueprint(auth_blueprint)
    register_auth_wall(server, settings.url_base_pathname)


def load_user(user_id: str) -> User | None:
    """Look the session's user up in the users file and accept it only while its server-side record is valid."""
    user = current_app.extensions["bagboard.users"].get(user_id)
    if user is None:
        return None
    # A demo account never holds a session outside development.
    if user.demo and current_app.config["BAGBOARD_SETTINGS"].env != "development":
        return None
    sessions: SessionRegistry = current_app.extensions["bagboard.sessions"]
    problem = sessions.check(session.get("sid"), user)
    if problem:
        log.info("session_refused", user=user.name, reason=problem)
        session.clear()
        return None
    return user
