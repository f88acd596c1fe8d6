"""Configure the shared cache that every gunicorn worker sees."""

from __future__ import annotations

from typing import Any

from cachelib import BaseCache
from flask import Flask

from src.config import Settings
from src.core.extensions import cache


def cache_config(settings: Settings) -> dict[str, Any]:
    """Translate settings into flask-caching's configuration keys."""
    config: dict[str, Any] = {
        "CACHE_TYPE": settings.cache_type,
        "CACHE_DEFAULT_TIMEOUT": settings.cache_default_timeout,
        "CACHE_KEY_PREFIX": "bagboard:",
    }
    if settings.cache_type == "FileSystemCache":
        config["CACHE_DIR"] = str(settings.cache_dir)
        # Inventory generations and throttling counters must not be evicted early.
        config["CACHE_THRESHOLD"] = 10_000
    elif settings.cache_type == "RedisCache":
        config["CACHE_REDIS_URL"] = settings.cache_redis_url
    return config


def init_cache(server: Flask, settings: Settings) -> BaseCache:
    """Initialise the flask-caching extension and return its cachelib backend."""
    if settings.cache_type == "FileSystemCache":
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
    cache.init_app(server, config=cache_config(settings))
    with server.app_context():
        return cache.cache
