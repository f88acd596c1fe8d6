"""The hook that registers the app's job handlers (download, upload, dataset, …) in a Celery worker.

The web process binds handlers to its own service container; a Celery worker has no app, so
``register`` builds the services from the same BAGBOARD_* environment (and the same shared cache)
and binds the same handlers. Override the hook with BAGBOARD_JOB_HANDLERS="module:function".
"""

from __future__ import annotations

from typing import Any


def register(target: Any) -> None:
    """Build the services from the environment and register their handlers on target."""
    from flask import Flask

    from src.config import Settings
    from src.core.cache import init_cache
    from src.services.container import ServiceContainer
    from src.services.job_handlers import bind_handlers

    settings = Settings.from_env()
    # A bare Flask app gives exactly the cache backend (type, prefix, directory) the web workers use.
    shared = init_cache(Flask("bagboard-worker"), settings)
    bind_handlers(target, ServiceContainer.initialize(settings, shared, with_runner=False))
