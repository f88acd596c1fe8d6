"""Job registries: where jobs live so that every worker process (and host) sees the same ones.

SQLite (one file under the data root) suits one host with several gunicorn workers; Redis suits
several hosts. Both enforce "one active job per (kind, target)" atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from src.jobs.redis_registry import RedisJobRegistry
from src.jobs.registry_base import ACTIVE_STATUSES, INTERRUPTED_ERROR, JobRegistry
from src.jobs.sqlite_registry import SqliteJobRegistry

__all__ = [
    "ACTIVE_STATUSES",
    "INTERRUPTED_ERROR",
    "JobRegistry",
    "RedisJobRegistry",
    "SqliteJobRegistry",
    "open_registry",
    "registry_from_env",
]

SQLITE_NAME = "jobs.sqlite3"
REDIS_PREFIX = "bagboard:jobs:"


def open_registry(data_root: Path, redis_url: str | None = None, *, redis_prefix: str = REDIS_PREFIX) -> JobRegistry:
    """Open the Redis registry when a URL is given, else SQLite at data_root/jobs.sqlite3."""
    if redis_url:
        return RedisJobRegistry(redis_url, redis_prefix)
    return SqliteJobRegistry(Path(data_root) / SQLITE_NAME)


def registry_from_env(environ: Mapping[str, str] | None = None) -> JobRegistry:
    """Open the registry the way every process must agree on: jobs Redis, cache Redis, else SQLite.

    Reads BAGBOARD_JOBS_REDIS_URL, then BAGBOARD_CACHE_REDIS_URL, then BAGBOARD_DATA_ROOT (default "data");
    BAGBOARD_JOBS_REDIS_PREFIX sets the Redis key prefix.
    """
    env = os.environ if environ is None else environ
    redis_url = env.get("BAGBOARD_JOBS_REDIS_URL") or env.get("BAGBOARD_CACHE_REDIS_URL") or None
    data_root = Path(env.get("BAGBOARD_DATA_ROOT") or "data").expanduser()
    return open_registry(data_root, redis_url, redis_prefix=env.get("BAGBOARD_JOBS_REDIS_PREFIX") or REDIS_PREFIX)
