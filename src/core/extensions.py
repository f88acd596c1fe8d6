"""Flask extensions as module-level singletons, initialised by the app factory."""

from __future__ import annotations

from flask_caching import Cache
from flask_login import LoginManager

cache = Cache()
login_manager = LoginManager()
