"""The service container: one place that builds every service from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachelib import BaseCache
from flask import current_app

from src.config import Settings


@dataclass
class ServiceContainer:
    """Hold the services a request may use; views reach it through get_services()."""

    settings: Settings
    shared_cache: BaseCache

    def home_summary(self) -> dict[str, Any]:
        """Return the headline figures for the home page."""
        return {}

    def health_facts(self) -> dict[str, Any]:
        """Return cheap facts for /healthz (no bucket calls)."""
        return {}

    def filter_options(self, level: str, parent: dict[str, str]) -> list[str]:
        """Return the options of a filter level under the parent selection."""
        return []


def build_services(settings: Settings, shared_cache: BaseCache) -> ServiceContainer:
    """Build the services for one app instance."""
    return ServiceContainer(settings=settings, shared_cache=shared_cache)


def get_services() -> ServiceContainer:
    """Return the current app's service container."""
    return current_app.extensions["bagboard.services"]
