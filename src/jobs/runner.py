"""Start jobs for users: role check, dedupe through the registry, then a thread pool or Celery runs them."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from src.auth.roles import Role, check_role
from src.core.logging import get_logger
from src.jobs.base import Job, JobKind
from src.jobs.context import CANCEL_CHECK_INTERVAL, PROGRESS_INTERVAL
from src.jobs.registry_base import INTERRUPTED_ERROR, JobRegistry
from src.jobs.worker import (
    HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT,
    RETENTION_S,
    RUN_JOB_TASK,
    Handler,
    HandlerSet,
    Heartbeat,
    execute_job,
    load_handlers,
)
from src.models.status import ProcessingStatus

__all__ = ["CeleryExecutor", "Handler", "HandlerSet", "JobRunner", "as_handler_set", "load_handlers"]

log = get_logger("bagboard.jobs")


def as_handler_set(handlers: HandlerSet | Mapping[JobKind | str, Handler] | None) -> HandlerSet:
    """Return handlers as a HandlerSet; None means the built-ins plus the configured hook's."""
    if isinstance(handlers, HandlerSet):
        return handlers
    return load_handlers() if handlers is None else HandlerSet(handlers)


class CeleryExecutor:
    """Send jobs to Celery workers (see src.jobs.celery_app) instead of this process's threads."""

    def __init__(self, broker_url: str | None = None, *, app: Any = None) -> None:
        if app is None:
            # Imported here: celery is only needed when a broker is configured.
            from src.jobs.celery_app import make_celery_app

            app = make_celery_app(broker_url)
        self.app = app

    def dispatch(self, job_id: str) -> None:
        """Queue the job for a worker."""
        self.app.send_task(RUN_JOB_TASK, args=[job_id])


class JobRunner:
    """Run registry jobs in a bounded thread pool (or hand them to Celery), with heartbeats."""

    def __init__(
        self,
        registry: JobRegistry,
        handlers: HandlerSet | Mapping[JobKind | str, Handler] | None = None,
        *,
        max_workers: int = 4,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        progress_interval: float = PROGRESS_INTERVAL,
        cancel_check_interval: float = CANCEL_CHECK_INTERVAL,
        retention_s: float | None = RETENTION_S,
        broker_url: str | None = None,
        celery: CeleryExecutor | None = None,
    ) -> None:
        self.registry = registry
        self.handlers = as_handler_set(handlers)
        self.progress_interval = progress_interval
        self.cancel_check_interval = cancel_check_interval
        self.celery = celery or (CeleryExecutor(broker_url) if broker_url else None)
        self._pool = (
            None if self.celery else ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="bagboard-job")
        )
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._closed = False
        self._heartbeat = Heartbeat(
            registry, interval=heartbeat_interval, timeout=heartbeat_timeout, retention_s=retention_s
        )
        # Jobs of a process that died while this one was down get failed now, not a minute later.
        self._heartbeat.beat()
        self._heartbeat.start()

    def register_handler(self, kind: JobKind | str, fn: Handler) -> None:
        """Make fn run jobs of kind."""
        self.handlers.register_handler(kind, fn)

    def submit(
        self,
        kind: JobKind | str,
        target: str,
        params: dict[str, Any] | None,
        actor: Any,
        *,
        required_role: Role = Role.OPERATOR,
    ) -> Job:
        """Start a job for actor, or return the one already active for (kind, target)."""
        kind = JobKind(kind)
        check_role(actor, required_role, f"start a {kind.value} job")
        if kind not in self.handlers:
            raise ValueError(f"no handler for {kind.value} jobs")
        if self._closed:
            raise RuntimeError("the job runner is shut down")
        # Jobs waiting in Celery's queue have no live owner to heartbeat them until a worker starts them.
        job, created = self.registry.create(kind, target, params, actor.name, heartbeat=self.celery is None)
        if not created:
            log.info("job_deduplicated", job_id=job.id, kind=kind.value, target=target, by=actor.name)
            return job
        log.info("job_submitted", job_id=job.id, kind=kind.value, target=target, by=actor.name)
        try:
            self._dispatch(job.id)
        except Exception as exc:
            log.exception("job_dispatch_failed", job_id=job.id)
            self._heartbeat.untrack(job.id)
            error = f"could not queue the job ({type(exc).__name__})"
            self.registry.finish(job.id, ProcessingStatus.FAILED, "failed", error=error)
        return self.registry.get(job.id) or job

    def cancel(self, job_id: str, actor: Any) -> bool:
        """Ask a job to stop (operators and admins only); return False if it was not active."""
        check_role(actor, Role.OPERATOR, "cancel a job")
        accepted = self.registry.request_cancel(job_id)
        log.info("job_cancel_requested", job_id=job_id, by=actor.name, accepted=accepted)
        return accepted

    def shutdown(self, wait: bool = False) -> None:
        """Stop taking jobs; wait=True lets queued and running jobs finish, else they end as interrupted."""
        self._closed = True
        if not wait:
            self._stopping.set()
            with self._lock:
                futures = list(self._futures.items())
            # Cancelling runs the done-callback, which takes the lock: so cancel outside it.
            queued = [job_id for job_id, future in futures if future.cancel()]
            for job_id in queued:
                self._heartbeat.untrack(job_id)
                self.registry.finish(job_id, ProcessingStatus.FAILED, "interrupted", error=INTERRUPTED_ERROR)
        if self._pool is not None:
            self._pool.shutdown(wait=wait)
        self._heartbeat.stop(wait=wait)

    def _dispatch(self, job_id: str) -> None:
        """Hand a new job to Celery or to the pool."""
        if self.celery is not None:
            self.celery.dispatch(job_id)
            return
        assert self._pool is not None
        self._heartbeat.track(job_id)
        with self._lock:
            future = self._pool.submit(self._run, job_id)
            self._futures[job_id] = future
        future.add_done_callback(lambda _: self._forget(job_id))

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._futures.pop(job_id, None)

    def _run(self, job_id: str) -> None:
        """Run one job in a pool thread."""
        try:
            execute_job(
                self.registry,
                self.handlers,
                job_id,
                progress_interval=self.progress_interval,
                cancel_check_interval=self.cancel_check_interval,
                on_context=lambda ctx: self._heartbeat.track(job_id, ctx),
                stopping=self._stopping,
            )
        except Exception:
            # A registry outage mid-job: the job stays active until its heartbeat goes stale.
            log.exception("job_runner_error", job_id=job_id)
        finally:
            self._heartbeat.untrack(job_id)
