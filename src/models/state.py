"""Where a run's data lives and what the pipeline should do with it next."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from src.models._serde import dataclass_to_dict
from src.models.coordinate import RunCoordinate
from src.models.status import DataStatus, NextAction

EXPECTED_EXTRACTION_FILES: tuple[str, ...] = (
    "frames.csv",
    "detections.csv",
    "tracking.csv",
    "detections.json",
    "tracking.json",
    "metadata.json",
)

NO_CLOUD_BAGS = "no bags in the cloud"


@dataclass
class CloudRawStatus:
    """Describe the raw bags of a run in the cloud bucket."""

    exists: bool
    bag_count: int
    bag_names: list[str] = field(default_factory=list)
    total_size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CloudRawStatus:
        """Build from the output of to_dict."""
        return cls(
            exists=bool(data["exists"]),
            bag_count=int(data["bag_count"]),
            bag_names=list(data.get("bag_names") or []),
            total_size=int(data.get("total_size") or 0),
        )


@dataclass
class LocalRawStatus:
    """Describe the raw bags of a run on local disk."""

    downloaded: bool
    bag_count: int
    bag_names: list[str] = field(default_factory=list)
    total_size: int = 0
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalRawStatus:
        """Build from the output of to_dict."""
        return cls(
            downloaded=bool(data["downloaded"]),
            bag_count=int(data["bag_count"]),
            bag_names=list(data.get("bag_names") or []),
            total_size=int(data.get("total_size") or 0),
            path=data.get("path"),
        )


@dataclass
class ExtractionStatus:
    """Describe the extracted output files of a run."""

    extracted: bool
    files: dict[str, bool] = field(default_factory=dict)
    path: str | None = None

    EXPECTED_FILES: ClassVar[tuple[str, ...]] = EXPECTED_EXTRACTION_FILES

    @classmethod
    def expected_files(cls) -> tuple[str, ...]:
        """Return the file names a complete extraction produces."""
        return cls.EXPECTED_FILES

    @classmethod
    def from_present(cls, present: Iterable[str], path: str | None = None) -> ExtractionStatus:
        """Build from the names of files found on disk; extracted means all expected are there."""
        found = set(present)
        files = {name: name in found for name in cls.EXPECTED_FILES}
        return cls(extracted=all(files.values()), files=files, path=path)

    @property
    def missing_files(self) -> list[str]:
        """Return the expected files that are not present."""
        return [name for name in self.EXPECTED_FILES if not self.files.get(name, False)]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractionStatus:
        """Build from the output of to_dict."""
        files = {str(name): bool(present) for name, present in (data.get("files") or {}).items()}
        return cls(extracted=bool(data["extracted"]), files=files, path=data.get("path"))


@dataclass
class RunState:
    """Combine a run's cloud, local and extraction status with the pipeline's verdict."""

    coordinate: RunCoordinate
    cloud_raw_status: CloudRawStatus
    local_raw_status: LocalRawStatus
    extraction_status: ExtractionStatus
    pipeline_status: DataStatus
    next_action: NextAction
    ready_for_analysis: bool
    analyzed: bool = False

    @classmethod
    def derive(
        cls,
        coordinate: RunCoordinate,
        cloud: CloudRawStatus,
        local: LocalRawStatus,
        extraction: ExtractionStatus,
        analyzed: bool,
    ) -> RunState:
        """Compute pipeline_status and next_action from the three statuses."""
        if not local.downloaded:
            status, action = DataStatus.NOT_DOWNLOADED, NextAction.DOWNLOAD
        elif not extraction.extracted:
            status, action = DataStatus.DOWNLOADED, NextAction.EXTRACT
        elif not analyzed:
            status, action = DataStatus.EXTRACTED, NextAction.ANALYZE
        else:
            status, action = DataStatus.ANALYZED, NextAction.COMPLETE
        return cls(
            coordinate=coordinate,
            cloud_raw_status=cloud,
            local_raw_status=local,
            extraction_status=extraction,
            pipeline_status=status,
            next_action=action,
            ready_for_analysis=status in (DataStatus.EXTRACTED, DataStatus.ANALYZED),
            analyzed=status is DataStatus.ANALYZED,
        )

    @property
    def blocked_reason(self) -> str | None:
        """Return why next_action cannot run now, or None when it can."""
        cloud = self.cloud_raw_status
        if self.next_action is NextAction.DOWNLOAD and (not cloud.exists or cloud.bag_count <= 0):
            return NO_CLOUD_BAGS
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        """Build from the output of to_dict."""
        return cls(
            coordinate=RunCoordinate.from_dict(data["coordinate"]),
            cloud_raw_status=CloudRawStatus.from_dict(data["cloud_raw_status"]),
            local_raw_status=LocalRawStatus.from_dict(data["local_raw_status"]),
            extraction_status=ExtractionStatus.from_dict(data["extraction_status"]),
            pipeline_status=DataStatus(data["pipeline_status"]),
            next_action=NextAction(data["next_action"]),
            ready_for_analysis=bool(data["ready_for_analysis"]),
            analyzed=bool(data.get("analyzed", False)),
        )


@dataclass
class StateOverview:
    """The download manager's run table: its first rows, and KPI counts over every run under the filter."""

    rows: list[dict[str, Any]]
    total_runs: int
    with_cloud_bags: int
    downloaded: int
    extracted: int
    analyzed: int

    @property
    def truncated(self) -> bool:
        """Tell whether rows hold fewer runs than the filter selects."""
        return len(self.rows) < self.total_runs
