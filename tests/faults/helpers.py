"""Helpers shared by the fault tests."""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import google_crc32c
from google.cloud.storage.retry import DEFAULT_RETRY

from src.auth.roles import Role
from src.auth.users import UserStore
from src.config import Settings
from tests.support.fault_proxy import RecordedRequest

# Backoff is real but short: the tests only need to see that retries happen, and when they stop.
FAST_RETRY = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=2).with_timeout(10)
# A retry budget an outage outlasts in about a second (production uses the library's 120 s).
SHORT_RETRY = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=2).with_timeout(1.0)


def crc32c_of(data: bytes) -> str:
    """Return the CRC32C of data encoded the way GCS reports it."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def file_crc32c(path: Path) -> str:
    """Return the CRC32C of a file encoded the way GCS reports it."""
    return crc32c_of(path.read_bytes())


def random_bytes(size: int, seed: int) -> bytes:
    """Return size deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def is_listing(request: RecordedRequest) -> bool:
    """Match objects.list calls."""
    return request.is_listing


def is_media(request: RecordedRequest) -> bool:
    """Match object downloads (alt=media)."""
    return request.method == "GET" and request.param("alt") == "media"


def is_metadata(request: RecordedRequest) -> bool:
    """Match single-object metadata GETs (objects.get without alt=media)."""
    return request.method == "GET" and "/o/" in request.path and request.param("alt") != "media"


def app_settings(data_root: Path, **overrides: str) -> Settings:
    """Return test settings on data_root (file:// buckets below it, no inventory rebuild on start)."""
    environ = {
        "BAGBOARD_ENV": "test",
        "BAGBOARD_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "BAGBOARD_DATA_ROOT": str(data_root),
        "BAGBOARD_INVENTORY_REFRESH_ON_START": "false",
        **overrides,
    }
    return Settings.from_env(environ)


def seed_demo_app(settings: Settings) -> Any:
    """Add one user per role, create the app and seed the tiny demo through its CLI; return the app."""
    from app import create_app
    from tests.conftest import PASSWORDS

    store = UserStore(settings.users_file)
    for role, password in PASSWORDS.items():
        store.add(role, password, Role(role))
    app = create_app(settings)
    result = app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    return app
