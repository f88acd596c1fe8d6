"""The JobContext a running handler gets: progress and log lines go to the registry, throttled."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from src.jobs.base import JobCancelled
from src.jobs.registry_base import JobRegistry

# At most four progress writes per second per job: a download reports per chunk.
PROGRESS_INTERVAL = 0.25
# A cancel need not land faster than a user can notice; this keeps per-chunk checks off the DB.
CANCEL_CHECK_INTERVAL = 0.5


class WorkerStopping(JobCancelled):
    """Raised inside a job when its worker shuts down; the job ends FAILED as interrupted, not CANCELLED."""


class RegistryContext:
    """Report a job's progress to the registry without writing on every call."""

    def __init__(
        self,
        registry: JobRegistry,
        job_id: str,
        *,
        progress_interval: float = PROGRESS_INTERVAL,
        cancel_check_interval: float = CANCEL_CHECK_INTERVAL,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.job_id = job_id
        self.progress_interval = progress_interval
        self.cancel_check_interval = cancel_check_interval
        self._stopping = stopping
        self._clock = clock
        # The heartbeat thread flushes too, so pending writes and the handler never interleave badly.
        self._lock = threading.Lock()
        self._fields: dict[str, Any] = {}
        self._lines: list[str] = []
        self._last_write = float("-inf")
        self._last_cancel_check = float("-inf")
        self._cancelled = False

    def progress(
        self,
        *,
        files_done: int | None = None,
        files_total: int | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Record progress (absolute values); written at most every progress_interval seconds."""
        given = {
            "files_done": files_done,
            "files_total": files_total,
            "bytes_done": bytes_done,
            "bytes_total": bytes_total,
            "message": message,
        }
        with self._lock:
            self._fields.update({name: value for name, value in given.items() if value is not None})
        self._flush_if_due()

    def log(self, line: str) -> None:
        """Append a line to the job's log tail (written with the next progress write)."""
        with self._lock:
            self._lines.append(line)
        self._flush_if_due()

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a cancel was requested (asks the registry at most twice a second)."""
        if self._stopping is not None and self._stopping.is_set():
            raise WorkerStopping(self.job_id)
        now = self._clock()
        if not self._cancelled and now - self._last_cancel_check >= self.cancel_check_interval:
            self._last_cancel_check = now
            self._cancelled = self.registry.is_cancel_requested(self.job_id)
        if self._cancelled:
            raise JobCancelled(self.job_id)

    def flush(self) -> None:
        """Write whatever progress and log lines are still pending."""
        with self._lock:
            fields, self._fields = self._fields, {}
            lines, self._lines = self._lines, []
            self._last_write = self._clock()
            if fields:
                self.registry.update_progress(self.job_id, **fields)
            if lines:
                self.registry.append_logs(self.job_id, lines)

    def _flush_if_due(self) -> None:
        """Flush when the last write is older than the interval."""
        if self._clock() - self._last_write >= self.progress_interval:
            self.flush()
