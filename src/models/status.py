"""Status enums shared by the services, the callbacks and the background jobs."""

from __future__ import annotations

from enum import StrEnum


class DataStatus(StrEnum):
    """Say how far a run has come through the data pipeline."""

    NOT_DOWNLOADED = "not_downloaded"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    EXTRACTING = "extracting"
    EXTRACTED = "extracted"
    ANALYZING = "analyzing"
    ANALYZED = "analyzed"
    ERROR = "error"


class ProcessingStatus(StrEnum):
    """Say where a single job (download, extraction, analysis) stands."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"
    FAILED = "failed"
    CACHED = "cached"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Return True when the job will not change state again."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {ProcessingStatus.COMPLETE, ProcessingStatus.FAILED, ProcessingStatus.CACHED, ProcessingStatus.CANCELLED}
)


class NextAction(StrEnum):
    """Name the next step a run needs."""

    DOWNLOAD = "download"
    EXTRACT = "extract"
    ANALYZE = "analyze"
    COMPLETE = "complete"
