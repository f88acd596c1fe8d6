"""The registry interface every job store implements, and the helpers the stores share."""

from __future__ import annotations

import builtins
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from src.jobs.base import Job, JobKind
from src.models.status import ProcessingStatus

ACTIVE_STATUSES = (ProcessingStatus.PENDING, ProcessingStatus.IN_PROGRESS)
PROGRESS_FIELDS = frozenset({"files_done", "files_total", "bytes_done", "bytes_total", "message"})
INTERRUPTED_ERROR = "interrupted: the worker running it stopped"
CANCELLED_BEFORE_START = "cancelled before it started"
LOG_KEEP = 200
# Long lines (a dumped response body, say) would bloat every poll of the job list.
MAX_LOG_LINE = 1000
MAX_ERROR = 500


class JobRegistry(ABC):
    """Store jobs where every worker process sees them; all writes are atomic per job."""

    @abstractmethod
    def create(
        self,
        kind: JobKind | str,
        target: str,
        params: dict[str, Any] | None = None,
        started_by: str = "",
        *,
        heartbeat: bool = True,
    ) -> tuple[Job, bool]:
        """Create a PENDING job, or return the active one for (kind, target) with created=False.

        heartbeat=False leaves heartbeat_at empty so mark_interrupted ignores the job until it
        starts: use it when a queue (Celery) rather than a live process holds the pending job.
        """

    @abstractmethod
    def get(self, job_id: str) -> Job | None:
        """Return the job, or None if unknown."""

    @abstractmethod
    def list(
        self,
        limit: int = 100,
        kinds: Iterable[JobKind | str] | None = None,
        active_only: bool = False,
        *,
        exclude_batched: bool = False,
    ) -> builtins.list[Job]:
        """Return jobs newest first, optionally only some kinds or only active ones.

        exclude_batched leaves out the step jobs of batches (params["batch"] set): their batch job stands for them.
        """

    @abstractmethod
    def start(self, job_id: str) -> bool:
        """Move a PENDING, not cancelled job to IN_PROGRESS; return False if it may not run."""

    @abstractmethod
    def update_progress(self, job_id: str, **fields: Any) -> bool:
        """Set progress fields of an active job and bump its heartbeat; return False if not active."""

    @abstractmethod
    def append_logs(self, job_id: str, lines: builtins.list[str], keep: int = LOG_KEEP) -> None:
        """Append lines to the job's log tail, keeping only the last keep lines."""

    def append_log(self, job_id: str, line: str, keep: int = LOG_KEEP) -> None:
        """Append one line to the job's log tail, keeping only the last keep lines."""
        self.append_logs(job_id, [line], keep)

    @abstractmethod
    def finish(
        self,
        job_id: str,
        status: ProcessingStatus,
        message: str = "",
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Move an active job to a terminal status; return False if it had already ended.

        An empty message keeps the job's last progress message.
        """

    @abstractmethod
    def request_cancel(self, job_id: str) -> bool:
        """Cancel a pending job at once or flag a running one; return False if it is not active."""

    @abstractmethod
    def is_cancel_requested(self, job_id: str) -> bool:
        """Tell whether a cancel was requested for the job."""

    @abstractmethod
    def heartbeat(self, job_id: str) -> bool:
        """Record that the job's owner is alive; return False if the job is no longer active."""

    @abstractmethod
    def mark_interrupted(self, timeout_s: float) -> builtins.list[str]:
        """Fail active jobs whose heartbeat is older than timeout_s; return their ids."""

    @abstractmethod
    def purge(self, older_than_s: float) -> int:
        """Delete jobs that finished more than older_than_s ago; return how many."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores need nothing
        """Release connections (call when no job of this instance is running)."""


def is_batched(job: Job) -> bool:
    """Tell whether a job is a step of a batch."""
    return bool(job.params.get("batch"))


def new_job_id() -> str:
    """Return a fresh job id."""
    return uuid.uuid4().hex


def now_ts() -> float:
    """Return the current UTC time as epoch seconds (the stores keep timestamps this way)."""
    return time.time()


def to_datetime(value: float | None) -> datetime | None:
    """Turn stored epoch seconds into an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def dump_json(value: Any) -> str:
    """Serialise params/results; unknown types become strings rather than failing the job."""
    return json.dumps(value if value is not None else {}, default=str, separators=(",", ":"))


def clean_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Return params as plain JSON data, raising ValueError if they cannot be stored."""
    try:
        return json.loads(json.dumps(params or {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"job params must be JSON data: {exc}") from None


def check_progress_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Return the fields coerced to their column types, raising ValueError on unknown names."""
    unknown = set(fields) - PROGRESS_FIELDS
    if unknown:
        raise ValueError(f"unknown progress fields: {', '.join(sorted(unknown))}")
    return {name: str(value) if name == "message" else int(value) for name, value in fields.items()}


def clip_line(line: str, limit: int = MAX_LOG_LINE) -> str:
    """Strip trailing whitespace and cut an overlong line."""
    line = str(line).rstrip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def one_line(text: str, limit: int = MAX_ERROR) -> str:
    """Collapse text to a single line fit to show the user."""
    return clip_line(" ".join(str(text).split()), limit)


def check_terminal(status: ProcessingStatus | str) -> ProcessingStatus:
    """Return status as a terminal ProcessingStatus, raising ValueError otherwise."""
    status = ProcessingStatus(status)
    if not status.is_terminal:
        raise ValueError(f"finish needs a terminal status, not {status.value}")
    return status
