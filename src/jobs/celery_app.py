"""The optional Celery worker: runs registry jobs in separate processes, possibly on other hosts.

The web app sends jobs here when its JobRunner gets a broker URL; without one, jobs run in the
web process's own thread pool and nothing in this module is used. Start a worker with the same
environment as the web app (so both open the same registry and handlers)::

    BAGBOARD_CELERY_BROKER_URL=redis://localhost:6379/1 \\
        celery -A src.jobs.celery_app worker --loglevel=info

Environment: BAGBOARD_CELERY_BROKER_URL (the broker); BAGBOARD_JOBS_REDIS_URL, else
BAGBOARD_CACHE_REDIS_URL, else BAGBOARD_DATA_ROOT (SQLite) for the registry; BAGBOARD_JOB_HANDLERS
("module:function", default src.jobs.handlers:register) for the handlers; BAGBOARD_JOB_HEARTBEAT_INTERVAL
and BAGBOARD_JOB_HEARTBEAT_TIMEOUT (seconds, default 5 and 60) for heartbeats, the same as the web app's.
"""

from __future__ import annotations

import os
import threading

from celery import Celery

from src.core.logging import get_logger
from src.jobs.registry import registry_from_env
from src.jobs.registry_base import JobRegistry
from src.jobs.worker import RUN_JOB_TASK, HandlerSet, Heartbeat, execute_job, heartbeat_settings, load_handlers

BROKER_ENV = "BAGBOARD_CELERY_BROKER_URL"
log = get_logger("bagboard.jobs")

_state: tuple[int, JobRegistry, HandlerSet, Heartbeat] | None = None
_state_lock = threading.Lock()


def make_celery_app(broker_url: str | None = None) -> Celery:
    """Return a Celery app on the broker (default from BAGBOARD_CELERY_BROKER_URL) with the run_job task."""
    app = Celery("bagboard", broker=broker_url or os.environ.get(BROKER_ENV) or None)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        # Results live in the job registry; a result backend would only duplicate them.
        task_ignore_result=True,
        # Jobs run for minutes: a worker should not reserve more than the one it runs.
        worker_prefetch_multiplier=1,
        # Acknowledge on receipt: a redelivered job could not start again (it is no longer pending).
        task_acks_late=False,
        broker_connection_retry_on_startup=True,
    )
    app.task(name=RUN_JOB_TASK, ignore_result=True)(run_job)
    return app


def worker_state() -> tuple[JobRegistry, HandlerSet, Heartbeat]:
    """Return this process's registry, handlers and heartbeat, opening them on first use after a fork."""
    global _state
    with _state_lock:
        if _state is None or _state[0] != os.getpid():
            registry = registry_from_env()
            interval, timeout = heartbeat_settings()
            heartbeat = Heartbeat(registry, interval=interval, timeout=timeout)
            heartbeat.start()
            _state = (os.getpid(), registry, load_handlers(), heartbeat)
        return _state[1], _state[2], _state[3]


def reset_worker_state() -> None:
    """Forget the registry and handlers so the next task re-reads the environment (tests)."""
    global _state
    with _state_lock:
        if _state is not None and _state[0] == os.getpid():
            _state[3].stop()
            _state[1].close()
        _state = None


def run_job(job_id: str) -> str | None:
    """Run the registry job job_id in this worker and return its final status."""
    registry, handlers, heartbeat = worker_state()
    try:
        job = execute_job(registry, handlers, job_id, on_context=lambda ctx: heartbeat.track(job_id, ctx))
    finally:
        heartbeat.untrack(job_id)
    return None if job is None else job.status.value


app = make_celery_app()
