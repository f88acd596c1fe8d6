"""Fixtures for the job tests: both stores (Redis when redis-server exists), actors and runners."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from src.auth.roles import Role
from src.jobs.registry_base import JobRegistry
from src.jobs.runner import JobRunner
from tests.jobs.helpers import Actor, StoreSpec

REDIS_SERVER = Path("/usr/bin/redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Run a throwaway redis-server on 127.0.0.1 for the session (no persistence)."""
    if not REDIS_SERVER.exists() and not shutil.which("redis-server"):
        pytest.skip(f"redis-server not found at {REDIS_SERVER}: Redis registry tests need a real server")
    binary = str(REDIS_SERVER) if REDIS_SERVER.exists() else str(shutil.which("redis-server"))
    port = _free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 5
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"redis-server did not start on port {port}")
            time.sleep(0.02)
    client.close()
    yield url
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture(params=["sqlite", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    """Describe a fresh store: a SQLite file, or a unique key prefix on the test Redis."""
    if request.param == "sqlite":
        return StoreSpec("sqlite", str(tmp_path / "jobs.sqlite3"))
    return StoreSpec("redis", request.getfixturevalue("redis_url"), prefix=f"test:{uuid.uuid4().hex}:")


@pytest.fixture
def registry(spec: StoreSpec) -> Iterator[JobRegistry]:
    """Open the store."""
    store = spec.open()
    yield store
    store.close()


@pytest.fixture
def viewer() -> Actor:
    """Return a user with the viewer role."""
    return Actor("viewer", Role.VIEWER)


@pytest.fixture
def operator() -> Actor:
    """Return a user with the operator role."""
    return Actor("operator", Role.OPERATOR)


@pytest.fixture
def admin() -> Actor:
    """Return a user with the admin role."""
    return Actor("admin", Role.ADMIN)


@pytest.fixture
def make_runner(registry: JobRegistry) -> Iterator[Callable[..., JobRunner]]:
    """Build runners with test-speed intervals; shut them all down afterwards."""
    runners: list[JobRunner] = []

    def make(handlers: Any, **options: Any) -> JobRunner:
        store = options.pop("registry", registry)
        settings = {
            "heartbeat_interval": 0.05,
            "heartbeat_timeout": 30.0,
            "progress_interval": 0.02,
            "cancel_check_interval": 0.0,
            **options,
        }
        runner = JobRunner(store, handlers, **settings)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.shutdown(wait=False)
    for runner in runners:
        runner.shutdown(wait=True)
