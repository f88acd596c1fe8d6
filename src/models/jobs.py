"""Background jobs that download and extract a run's raw bags."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from src.models._serde import dataclass_to_dict, parse_datetime
from src.models.coordinate import RunCoordinate
from src.models.status import ProcessingStatus


@dataclass
class DownloadJob:
    """Track the download of one run's bags from the cloud bucket."""

    job_id: str
    coordinate: RunCoordinate
    source_bucket: str
    target_path: Path
    files_to_download: list[str] = field(default_factory=list)
    total_files: int = 0
    files_downloaded: int = 0
    total_bytes: int = 0
    bytes_downloaded: int = 0
    status: ProcessingStatus = ProcessingStatus.PENDING
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None

    @property
    def progress_percent(self) -> float:
        """Return bytes downloaded as a percentage of total bytes (0 when the total is 0)."""
        if self.total_bytes <= 0:
            return 0.0
        return self.bytes_downloaded / self.total_bytes * 100

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DownloadJob:
        """Build from the output of to_dict."""
        return cls(
            job_id=data["job_id"],
            coordinate=RunCoordinate.from_dict(data["coordinate"]),
            source_bucket=data["source_bucket"],
            target_path=Path(data["target_path"]),
            files_to_download=list(data.get("files_to_download") or []),
            total_files=int(data.get("total_files", 0)),
            files_downloaded=int(data.get("files_downloaded", 0)),
            total_bytes=int(data.get("total_bytes", 0)),
            bytes_downloaded=int(data.get("bytes_downloaded", 0)),
            status=ProcessingStatus(data.get("status", ProcessingStatus.PENDING)),
            started_at=parse_datetime(data.get("started_at")),
            completed_at=parse_datetime(data.get("completed_at")),
            error_message=data.get("error_message"),
        )


@dataclass
class ExtractionJob:
    """Track the extraction of one run's downloaded bags into CSV and JSON files."""

    job_id: str
    coordinate: RunCoordinate
    source_path: Path
    output_path: Path
    total_bags: int = 0
    bags_processed: int = 0
    frames_extracted: int = 0
    status: ProcessingStatus = ProcessingStatus.PENDING
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    docker_output: str | None = None

    @property
    def progress_percent(self) -> float:
        """Return bags processed as a percentage of total bags (0 when the total is 0)."""
        if self.total_bags <= 0:
            return 0.0
        return self.bags_processed / self.total_bags * 100

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractionJob:
        """Build from the output of to_dict."""
        return cls(
            job_id=data["job_id"],
            coordinate=RunCoordinate.from_dict(data["coordinate"]),
            source_path=Path(data["source_path"]),
            output_path=Path(data["output_path"]),
            total_bags=int(data.get("total_bags", 0)),
            bags_processed=int(data.get("bags_processed", 0)),
            frames_extracted=int(data.get("frames_extracted", 0)),
            status=ProcessingStatus(data.get("status", ProcessingStatus.PENDING)),
            started_at=parse_datetime(data.get("started_at")),
            completed_at=parse_datetime(data.get("completed_at")),
            error_message=data.get("error_message"),
            docker_output=data.get("docker_output"),
        )
