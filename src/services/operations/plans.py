"""Dry-run plans and results of the cloud operations, as small JSON-serialisable dataclasses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from src.models import RunCoordinate
from src.models._serde import dataclass_to_dict

Action = Literal["download", "upload", "skip", "overwrite", "conflict"]
CONFLICT_RESOLUTIONS: tuple[str, ...] = ("skip", "overwrite")
TRANSFER_ACTIONS: frozenset[str] = frozenset({"download", "upload", "overwrite"})


@dataclass(frozen=True)
class FileAction:
    """What an operation does with one file: name (relative), size in bytes, action and why."""

    name: str
    size: int
    action: Action
    reason: str

    @property
    def transfers(self) -> bool:
        """Tell whether the file will be sent over the network."""
        return self.action in TRANSFER_ACTIONS

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)


@dataclass
class _Plan:
    """Fields and totals shared by every plan; files keep the planner's order."""

    source: str  # where bytes come from (bucket URL or local directory)
    target: str  # where they go
    conflict_resolution: str
    files: list[FileAction]

    @property
    def counts(self) -> dict[str, int]:
        """Return how many files take each action."""
        return dict(Counter(f.action for f in self.files))

    @property
    def total_bytes(self) -> int:
        """Return the bytes of every file in the plan."""
        return sum(f.size for f in self.files)

    @property
    def transfer_files(self) -> list[FileAction]:
        """Return the files that will be transferred."""
        return [f for f in self.files if f.transfers]

    @property
    def bytes_to_transfer(self) -> int:
        """Return the bytes that will be transferred."""
        return sum(f.size for f in self.files if f.transfers)

    @property
    def conflicts(self) -> list[FileAction]:
        """Return the files left alone because they differ and overwriting was not chosen."""
        return [f for f in self.files if f.action == "conflict"]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict with the totals added."""
        return {
            **dataclass_to_dict(self),
            "counts": self.counts,
            "total_bytes": self.total_bytes,
            "bytes_to_transfer": self.bytes_to_transfer,
        }


@dataclass
class DownloadPlan(_Plan):
    """The dry run of downloading one run's raw objects into data_root/raw/{coord}."""

    coordinate: RunCoordinate


@dataclass
class UploadPlan(_Plan):
    """The dry run of uploading one local ML export to the ML bucket."""

    export_id: str
    # Files that could not be mapped to a run coordinate; reported, never uploaded.
    unmapped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetRun:
    """One run of a dataset: its bags (raw bucket), samples and labels, and coverage."""

    coordinate: str
    bags: int
    samples: int
    labels: int
    expected_samples: int
    coverage_pct: float | None  # samples / expected x 100; None when the run has no bags
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)


@dataclass
class DatasetPlan(_Plan):
    """The dry run of fetching a filter selection of ML samples as a named dataset."""

    name: str
    filters: dict[str, str]
    split: float | None
    expected_samples_per_bag: int
    runs: list[DatasetRun]
    split_counts: dict[str, int]  # samples per split ('train'/'val'), {} without a split
    ignored_objects: int = 0  # objects under the selection that are neither samples nor their labels


@dataclass
class UploadResult:
    """What an ML upload did; uploaded is True when every file is now in the bucket."""

    export_id: str
    destination: str
    files_uploaded: int
    files_identical: int  # already in the bucket with the same content (planned or found via 412)
    bytes_uploaded: int
    conflicts: list[FileAction]
    unmapped: list[str]
    uploaded: bool
    tracking_updated: bool
    uploaded_at: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)


@dataclass
class DatasetResult:
    """A fetched dataset: where it is and what it holds."""

    name: str
    path: Path
    manifest_path: Path
    created_at: str
    runs: int
    samples: int
    labels: int
    files: int
    bytes: int
    split_counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)
