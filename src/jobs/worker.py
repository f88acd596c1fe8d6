"""What any worker (a runner thread or a Celery process) does: find the handler, run it, record the outcome."""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from src.core.logging import get_logger
from src.jobs.base import Job, JobCancelled, JobContext, JobError, JobKind
from src.jobs.context import CANCEL_CHECK_INTERVAL, PROGRESS_INTERVAL, RegistryContext, WorkerStopping
from src.jobs.registry_base import INTERRUPTED_ERROR, JobRegistry, one_line
from src.models.status import ProcessingStatus

log = get_logger("bagboard.jobs")

HANDLERS_ENV = "BAGBOARD_JOB_HANDLERS"
RUN_JOB_TASK = "bagboard.run_job"
DEFAULT_HANDLERS_HOOK = "src.jobs.handlers:register"
MAX_SLEEP_S = 600.0
HEARTBEAT_INTERVAL = 5.0
# Twelve missed beats: long enough to ride out a stalled disk or a GC pause, short enough for users.
HEARTBEAT_TIMEOUT = 60.0
RETENTION_S = 7 * 24 * 3600.0
PURGE_INTERVAL_S = 3600.0
# Every process sharing a registry must use the same values: one with a shorter timeout than another's
# interval would fail that process's live jobs as interrupted.
HEARTBEAT_INTERVAL_ENV = "BAGBOARD_JOB_HEARTBEAT_INTERVAL"
HEARTBEAT_TIMEOUT_ENV = "BAGBOARD_JOB_HEARTBEAT_TIMEOUT"


class Handler(Protocol):
    """Run one job's work and return its result (JSON data)."""

    def __call__(self, ctx: JobContext, /, **params: Any) -> dict[str, Any] | None: ...


class HandlerSet:
    """Map job kinds to the functions that run them."""

    def __init__(self, handlers: Mapping[JobKind | str, Handler] | None = None) -> None:
        self._handlers: dict[JobKind, Handler] = {}
        for kind, fn in (handlers or {}).items():
            self.register_handler(kind, fn)

    def register_handler(self, kind: JobKind | str, fn: Handler) -> None:
        """Make fn run jobs of kind (replacing any earlier handler)."""
        self._handlers[JobKind(kind)] = fn

    def get(self, kind: JobKind | str) -> Handler | None:
        """Return the handler for kind, or None."""
        return self._handlers.get(JobKind(kind))

    def __contains__(self, kind: object) -> bool:
        """Tell whether kind has a handler."""
        try:
            return JobKind(kind) in self._handlers  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[JobKind]:
        """Iterate over the kinds that have handlers."""
        return iter(self._handlers)


def sleep_handler(
    ctx: JobContext, /, seconds: float = 1.0, steps: int = 10, fail: str | None = None, **_: Any
) -> dict[str, Any]:
    """Sleep in steps, reporting each as a file done; raise JobError(fail) at the end if given."""
    steps = max(1, int(steps))
    pause = min(float(seconds), MAX_SLEEP_S) / steps
    for step in range(steps):
        ctx.check_cancelled()
        time.sleep(pause)
        ctx.progress(files_done=step + 1, files_total=steps, message=f"step {step + 1} of {steps}")
        ctx.log(f"step {step + 1} done")
    if fail:
        raise JobError(fail)
    return {"slept_s": pause * steps, "steps": steps}


def heartbeat_settings(environ: Mapping[str, str] | None = None) -> tuple[float, float]:
    """Return (interval, timeout) in seconds from BAGBOARD_JOB_HEARTBEAT_INTERVAL / _TIMEOUT, else the defaults.

    Raise ValueError naming the variable when a value is not a positive number or the timeout is not
    longer than the interval.
    """
    env = os.environ if environ is None else environ
    values = []
    for name, default in ((HEARTBEAT_INTERVAL_ENV, HEARTBEAT_INTERVAL), (HEARTBEAT_TIMEOUT_ENV, HEARTBEAT_TIMEOUT)):
        raw = (env.get(name) or "").strip()
        try:
            value = float(raw) if raw else default
        except ValueError:
            value = -1.0
        if not value > 0:  # also rejects nan
            raise ValueError(f"{name} must be a positive number of seconds, got {raw!r}")
        values.append(value)
    interval, timeout = values
    if timeout <= interval:
        raise ValueError(
            f"{HEARTBEAT_TIMEOUT_ENV} ({timeout:g} s) must be longer than {HEARTBEAT_INTERVAL_ENV} ({interval:g} s)"
        )
    return interval, timeout


def builtin_handlers() -> HandlerSet:
    """Return the handlers every worker has (the diagnostic sleep job)."""
    return HandlerSet({JobKind.SLEEP: sleep_handler})


def load_handlers(hook: str | None = None) -> HandlerSet:
    """Return the built-in handlers plus those the hook ("module:function", default from env) registers."""
    handlers = builtin_handlers()
    spec = hook or os.environ.get(HANDLERS_ENV) or DEFAULT_HANDLERS_HOOK
    module_name, _, func_name = spec.partition(":")
    register = getattr(importlib.import_module(module_name), func_name or "register")
    register(handlers)
    return handlers


def execute_job(
    registry: JobRegistry,
    handlers: HandlerSet,
    job_id: str,
    *,
    progress_interval: float = PROGRESS_INTERVAL,
    cancel_check_interval: float = CANCEL_CHECK_INTERVAL,
    on_context: Callable[[RegistryContext], None] | None = None,
    stopping: threading.Event | None = None,
) -> Job | None:
    """Run a pending job to its end and return it as stored; skip it if it may no longer run."""
    job = registry.get(job_id)
    if job is None:
        log.warning("job_unknown", job_id=job_id)
        return None
    handler = handlers.get(job.kind)
    if handler is None:
        registry.finish(job_id, ProcessingStatus.FAILED, "failed", error=f"no handler for {job.kind.value} jobs here")
        return registry.get(job_id)
    if not registry.start(job_id):
        log.info("job_skipped", job_id=job_id, kind=job.kind.value, status=job.status.value)
        return registry.get(job_id)
    ctx = RegistryContext(
        registry,
        job_id,
        progress_interval=progress_interval,
        cancel_check_interval=cancel_check_interval,
        stopping=stopping,
    )
    if on_context is not None:
        on_context(ctx)
    bound = log.bind(job_id=job_id, kind=job.kind.value, target=job.target)
    bound.info("job_started", by=job.started_by)
    started = time.monotonic()
    try:
        result = handler(ctx, **job.params)
    except WorkerStopping:
        ctx.flush()
        registry.finish(job_id, ProcessingStatus.FAILED, "interrupted", error=INTERRUPTED_ERROR)
        bound.warning("job_interrupted", seconds=round(time.monotonic() - started, 3))
    except JobCancelled:
        # Keep the partial progress: the user sees how far it got.
        ctx.flush()
        registry.finish(job_id, ProcessingStatus.CANCELLED, "cancelled")
        bound.info("job_cancelled", seconds=round(time.monotonic() - started, 3))
    except JobError as exc:
        ctx.flush()
        registry.finish(job_id, ProcessingStatus.FAILED, "failed", error=one_line(str(exc)) or "failed")
        bound.warning("job_failed", error=str(exc), seconds=round(time.monotonic() - started, 3))
    except Exception as exc:
        ctx.flush()
        # The traceback goes to the log only; users see the exception type.
        registry.finish(job_id, ProcessingStatus.FAILED, "failed", error=f"unexpected error ({type(exc).__name__})")
        bound.exception("job_crashed", seconds=round(time.monotonic() - started, 3))
    else:
        ctx.flush()
        stored = result if isinstance(result, dict) else {} if result is None else {"value": result}
        registry.finish(job_id, ProcessingStatus.COMPLETE, result=stored)
        bound.info("job_complete", seconds=round(time.monotonic() - started, 3))
    return registry.get(job_id)


class Heartbeat:
    """Keep owned jobs' heartbeats fresh and fail other processes' dead jobs, from one daemon thread."""

    def __init__(
        self,
        registry: JobRegistry,
        *,
        interval: float = HEARTBEAT_INTERVAL,
        timeout: float | None = HEARTBEAT_TIMEOUT,
        retention_s: float | None = None,
    ) -> None:
        if timeout is not None and timeout <= interval:
            raise ValueError("the heartbeat timeout must be longer than the heartbeat interval")
        self.registry = registry
        self.interval = interval
        self.timeout = timeout
        self.retention_s = retention_s
        self._last_purge = float("-inf")
        self._owned: dict[str, RegistryContext | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="bagboard-job-heartbeat", daemon=True)
            self._thread.start()

    def track(self, job_id: str, ctx: RegistryContext | None = None) -> None:
        """Heartbeat job_id from now on, flushing ctx's pending progress on each beat."""
        with self._lock:
            self._owned[job_id] = ctx

    def untrack(self, job_id: str) -> None:
        """Stop heartbeating job_id."""
        with self._lock:
            self._owned.pop(job_id, None)

    def beat(self) -> list[str]:
        """Heartbeat owned jobs, fail stale ones (returning their ids) and now and then purge old ones."""
        with self._lock:
            owned = list(self._owned.items())
        for job_id, ctx in owned:
            try:
                if ctx is not None:
                    ctx.flush()
                self.registry.heartbeat(job_id)
            except Exception:
                log.exception("job_heartbeat_failed", job_id=job_id)
        self._purge_if_due()
        if self.timeout is None:
            return []
        try:
            interrupted = self.registry.mark_interrupted(self.timeout)
        except Exception:
            log.exception("job_mark_interrupted_failed")
            return []
        if interrupted:
            log.warning("jobs_interrupted", job_ids=interrupted)
        return interrupted

    def _purge_if_due(self) -> None:
        """Delete jobs past retention, at most once per PURGE_INTERVAL_S."""
        now = time.monotonic()
        if self.retention_s is None or now - self._last_purge < PURGE_INTERVAL_S:
            return
        self._last_purge = now
        try:
            purged = self.registry.purge(self.retention_s)
        except Exception:
            log.exception("job_purge_failed")
            return
        if purged:
            log.info("jobs_purged", count=purged, retention_s=self.retention_s)

    def stop(self, wait: bool = False) -> None:
        """Stop the thread."""
        self._stop.set()
        if wait and self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
