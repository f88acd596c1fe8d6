"""Helpers for the job tests: store specs a child process can reopen, actors, polling and child targets."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.auth.roles import Role
from src.jobs.base import Job, JobContext, JobKind
from src.jobs.redis_registry import RedisJobRegistry
from src.jobs.registry_base import JobRegistry
from src.jobs.runner import JobRunner
from src.jobs.sqlite_registry import SqliteJobRegistry
from src.jobs.worker import HandlerSet
from tests.helpers import Actor, wait_for

# Fork keeps child start-up in milliseconds (spawn would re-import pandas and friends).
FORK = multiprocessing.get_context("fork")


@dataclass(frozen=True)
class StoreSpec:
    """Where a registry lives, so that another instance or process can open the same one."""

    backend: str  # "sqlite" or "redis"
    location: str  # file path or redis URL
    prefix: str = "bagboard:jobs:"

    def open(self) -> JobRegistry:
        """Open a new registry instance on the store."""
        if self.backend == "sqlite":
            return SqliteJobRegistry(Path(self.location))
        return RedisJobRegistry(self.location, self.prefix)


def wait_terminal(registry: JobRegistry, job_id: str, timeout: float = 5.0) -> Job:
    """Wait until the job ends and return it."""

    def ended() -> Job | None:
        job = registry.get(job_id)
        return job if job is not None and job.status.is_terminal else None

    return wait_for(ended, timeout)


def create_in_child(spec: StoreSpec, barrier: Any, results: Any) -> None:
    """Child process: open the store, wait for the others, then race to create the same job."""
    registry = spec.open()
    barrier.wait(timeout=10)
    job, created = registry.create(JobKind.DOWNLOAD, "c/r/f/t/l/race", {"n": 1}, "child")
    results.put((job.id, created))


def create_with_inherited(registry: JobRegistry, results: Any) -> None:
    """Child process: use the registry instance the parent already used (as after gunicorn --preload)."""
    job, created = registry.create(JobKind.DOWNLOAD, "from-child")
    registry.close()
    results.put((job.id, created))


def endless_files(ctx: JobContext, /, **_: Any) -> dict[str, Any]:
    """Report a file every few milliseconds until cancelled (or killed)."""
    done = 0
    while True:
        ctx.check_cancelled()
        done += 1
        ctx.progress(files_done=done, message=f"file {done}")
        time.sleep(0.005)


def run_endless_job_in_child(spec: StoreSpec, target: str) -> None:
    """Child process: run a never-ending job with fast heartbeats until the parent kills us."""
    registry = spec.open()
    runner = JobRunner(
        registry,
        HandlerSet({JobKind.EXTRACT: endless_files}),
        heartbeat_interval=0.05,
        heartbeat_timeout=60.0,
        progress_interval=0.02,
    )
    runner.submit(JobKind.EXTRACT, target, {}, Actor("child", Role.OPERATOR))
    time.sleep(60)


def echo_handler(ctx: JobContext, /, **params: Any) -> dict[str, Any]:
    """Return the params unchanged."""
    ctx.progress(files_done=1, files_total=1)
    return {"echo": params}


def register_echo(target: Any) -> None:
    """A handler hook for load_handlers: make ANALYZE jobs echo their params."""
    target.register_handler(JobKind.ANALYZE, echo_handler)


class FakeCeleryApp:
    """Record send_task calls the way Celery's app would receive them."""

    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[tuple[str, list[Any]]] = []
        self.error = error

    def send_task(self, name: str, args: list[Any]) -> None:
        """Record the task, or fail like an unreachable broker."""
        if self.error is not None:
            raise self.error
        self.sent.append((name, args))
