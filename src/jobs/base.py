"""The job model and the small interface a long operation uses to report progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from src.models import ProcessingStatus


class JobKind(StrEnum):
    """What a job does; the target's meaning depends on it."""

    DOWNLOAD = "download"  # target: coordinate path
    UPLOAD = "upload"  # target: export id
    DATASET = "dataset"  # target: dataset name
    EXTRACT = "extract"  # target: coordinate path
    ANALYZE = "analyze"  # target: coordinate path
    INVENTORY_REFRESH = "inventory-refresh"  # target: "inventory"
    BATCH = "batch"  # target: "batch/{id}"; drives the step jobs of many runs (src/services/batch.py)
    SLEEP = "sleep"  # target: anything; a built-in diagnostic job (tests, worker smoke checks)


class JobCancelled(Exception):
    """Raised inside a job when a cancel was requested; the runner marks the job CANCELLED."""


class JobError(Exception):
    """A job failed for a reason fit to show the user in one line."""


@dataclass
class Job:
    """One server-side job as every worker and every user sees it."""

    id: str
    kind: JobKind
    target: str
    status: ProcessingStatus = ProcessingStatus.PENDING
    params: dict[str, Any] = field(default_factory=dict)
    started_by: str = ""
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    message: str = ""
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)
    cancel_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None

    @property
    def percent(self) -> float:
        """Return progress in percent, by bytes when known, else by files."""
        if self.status is ProcessingStatus.COMPLETE or self.status is ProcessingStatus.CACHED:
            return 100.0
        if self.bytes_total:
            return min(100.0, self.bytes_done / self.bytes_total * 100)
        if self.files_total:
            return min(100.0, self.files_done / self.files_total * 100)
        return 0.0

    @property
    def is_active(self) -> bool:
        """Tell whether the job is pending or running."""
        return self.status in (ProcessingStatus.PENDING, ProcessingStatus.IN_PROGRESS)


class JobContext(Protocol):
    """What a running operation may do: report progress, log, and honour a cancel."""

    job_id: str

    def progress(
        self,
        *,
        files_done: int | None = None,
        files_total: int | None = None,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Record progress (absolute values); cheap enough to call per chunk."""
        ...

    def log(self, line: str) -> None:
        """Append a line to the job's log tail."""
        ...

    def check_cancelled(self) -> None:
        """Raise JobCancelled if a cancel was requested (call between files or chunks)."""
        ...


class NullContext:
    """A context for running an operation outside any job (CLI, tests): records nothing."""

    job_id = "-"

    def progress(self, **_: Any) -> None:
        """Ignore progress."""

    def log(self, line: str) -> None:
        """Ignore log lines."""

    def check_cancelled(self) -> None:
        """Never cancelled."""
