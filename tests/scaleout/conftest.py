"""The scale-out stack, started once per session: Redis, a Celery worker and two gunicorn web processes.

Everything runs on 127.0.0.1 from a temporary data root seeded with the tiny demo; every process gets
the same BAGBOARD_* environment, exactly as separate hosts would in production.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from src.auth.roles import Role
from src.auth.users import UserStore
from src.jobs.redis_registry import RedisJobRegistry
from src.jobs.runner import JobRunner
from src.jobs.worker import builtin_handlers
from tests.scaleout.stack import (
    BIN,
    REDIS_SERVER,
    REPO,
    DashClient,
    Service,
    start_redis,
    start_web,
    start_worker,
    wait_web_ready,
    wait_worker_ready,
)

# Short heartbeats so a killed worker's job is failed in seconds rather than a minute.
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 4.0
USERS = {
    "ann": (Role.OPERATOR, "ann-operator-pass"),
    "bob": (Role.OPERATOR, "bob-operator-pass"),
    "ada": (Role.ADMIN, "ada-admin-password"),
}


def redis_binary() -> str:
    """Return the redis-server to run; skip without one locally, fail in CI (which must run these tests)."""
    if REDIS_SERVER.exists():
        return str(REDIS_SERVER)
    found = shutil.which("redis-server")
    if found:
        return found
    message = f"redis-server is needed for the scale-out tests (apt-get install redis-server; looked at {REDIS_SERVER})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run them")
    pytest.skip(message)


@dataclass
class Stack:
    """The running processes, their shared settings and ways to reach them."""

    root: Path
    env: dict[str, str]
    redis_url: str  # cache, job registry (db 0)
    broker_url: str  # Celery (db 1)
    url_a: str
    url_b: str
    web_a: Service
    web_b: Service
    worker: Service
    services: list[Service] = field(default_factory=list)
    workers_started: int = 1
    _runner: JobRunner | None = None
    _registry: RedisJobRegistry | None = None

    @property
    def data_root(self) -> Path:
        """Return the shared BAGBOARD_DATA_ROOT."""
        return Path(self.env["BAGBOARD_DATA_ROOT"])

    def client(self, web: str, user: str) -> DashClient:
        """Return a browser session signed in as user on web process "a" or "b"."""
        client = DashClient(self.url_a if web == "a" else self.url_b, f"web {web.upper()} as {user}")
        client.login(user, USERS[user][1])
        return client

    @property
    def registry(self) -> RedisJobRegistry:
        """Return a view of the job registry every process shares."""
        if self._registry is None:
            self._registry = RedisJobRegistry(self.redis_url)
        return self._registry

    @property
    def runner(self) -> JobRunner:
        """Return a runner that queues jobs on the broker like the web processes do, for jobs no page starts.

        Its heartbeat never fails anyone's jobs: detecting dead workers is left to the web processes.
        """
        if self._runner is None:
            self._runner = JobRunner(
                self.registry,
                builtin_handlers(),
                broker_url=self.broker_url,
                heartbeat_interval=3600,
                heartbeat_timeout=7200,
                retention_s=None,
            )
        return self._runner

    def start_worker(self) -> Service:
        """Start another Celery worker (after one was killed) and wait until it takes jobs."""
        self.workers_started += 1
        node = f"scaleout-{self.workers_started}"
        self.worker = start_worker(self.env, self.root / f"worker-{self.workers_started}.log", node)
        self.services.append(self.worker)
        wait_worker_ready(self.worker, node)
        return self.worker

    def close(self) -> None:
        """Stop every process: web and workers first, Redis last; then drop the clients."""
        if self._runner is not None:
            self._runner.shutdown(wait=False)
        if self._registry is not None:
            self._registry.close()
        for service in reversed(self.services):
            service.stop()


def process_env(data_root: Path, redis_base: str) -> dict[str, str]:
    """Return the environment every process gets: this one without BAGBOARD_*/GUNICORN_*, plus the stack's."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("BAGBOARD_", "GUNICORN_"))}
    return {
        **inherited,
        "BAGBOARD_ENV": "test",
        "BAGBOARD_SECRET_KEY": "scale-out-test-secret-key-" + "s" * 32,
        "BAGBOARD_DATA_ROOT": str(data_root),
        "BAGBOARD_CACHE_TYPE": "RedisCache",
        "BAGBOARD_CACHE_REDIS_URL": f"{redis_base}/0",
        "BAGBOARD_CELERY_BROKER_URL": f"{redis_base}/1",
        "BAGBOARD_INVENTORY_REFRESH_ON_START": "false",
        "BAGBOARD_LOG_FORMAT": "console",
        "BAGBOARD_JOB_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "BAGBOARD_JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        # Log lines reach the files as they happen (the tests read them).
        "PYTHONUNBUFFERED": "1",
    }


def seed_demo(env: dict[str, str]) -> None:
    """Write the tiny demo into the local-directory buckets and build the inventory, with the stack's env."""
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "demo", "seed", "--size", "tiny"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"demo seed failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def scale_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start Redis, seed a shared data root, then a Celery worker and web processes A and B; stop all after."""
    binary = redis_binary()
    root = tmp_path_factory.mktemp("scaleout")
    services: list[Service] = []
    stack: Stack | None = None
    try:
        redis_service, redis_base = start_redis(binary, root / "redis.log")
        services.append(redis_service)
        env = process_env(root / "data", redis_base)
        seed_demo(env)
        store = UserStore(root / "data" / "users.json")
        for name, (role, password) in USERS.items():
            store.add(name, password, role)

        # All three boot at once (each imports the app: a few seconds).
        worker = start_worker(env, root / "worker-1.log", "scaleout-1")
        services.append(worker)
        web_a, url_a = start_web(env, root / "web-a.log", "A")
        services.append(web_a)
        web_b, url_b = start_web(env, root / "web-b.log", "B")
        services.append(web_b)
        wait_worker_ready(worker, "scaleout-1")
        wait_web_ready(web_a, url_a)
        wait_web_ready(web_b, url_b)

        stack = Stack(
            root=root,
            env=env,
            redis_url=f"{redis_base}/0",
            broker_url=f"{redis_base}/1",
            url_a=url_a,
            url_b=url_b,
            web_a=web_a,
            web_b=web_b,
            worker=worker,
            services=services,
        )
        yield stack
    finally:
        if stack is not None:
            stack.close()
        else:
            for service in reversed(services):
                service.stop()
