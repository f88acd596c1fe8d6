"""Flask extensions as module-level singletons, initialised by the app factory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app
from flask_caching import Cache
from flask_login import LoginManager

if TYPE_CHECKING:
    from src.services.container import ServiceContainer

cache = Cache()
login_manager = LoginManager()


def get_services() -> ServiceContainer:
    """Return the current app's service container."""
    return current_app.extensions["bagboard.services"]
