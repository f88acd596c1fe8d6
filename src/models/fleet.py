"""Perception health across runs: per-run KPIs, their roll-up under a filter, two runs compared, batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pandas as pd

# The per-run KPIs the fleet view rolls up, in display order: (column, label, unit).
KPI_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("mean_fps", "Mean FPS", "Hz"),
    ("latency_p50_ms", "Latency p50", "ms"),
    ("latency_p95_ms", "Latency p95", "ms"),
    ("latency_p99_ms", "Latency p99", "ms"),
    ("drops_per_min", "Frame drops / min", "/min"),
    ("tracks_per_min", "Tracks / min", "/min"),
    ("mean_track_lifetime_s", "Mean track lifetime", "s"),
)
KPI_NAMES: tuple[str, ...] = tuple(name for name, _, _ in KPI_COLUMNS)
# What a run is judged an outlier on: one figure per concern (rate, latency, drops, tracking).
OUTLIER_METRICS: tuple[str, ...] = (
    "mean_fps",
    "latency_p95_ms",
    "drops_per_min",
    "tracks_per_min",
    "mean_track_lifetime_s",
)
PERIODS = ("day", "week")


@dataclass
class Outlier:
    """One run whose metric is far from its group's median (robust z-score on the MAD)."""

    coordinate: str
    group: str
    metric: str
    value: float
    median: float
    z: float


@dataclass
class FleetReport:
    """The fleet view's model: per-child and per-period roll-ups, outliers and how much is analysed."""

    filters: dict[str, str]
    level: str  # the level the children belong to ("timestamp" under a full filter)
    period: str
    threshold: float
    runs: pd.DataFrame  # one row per analysed run under the filter (coordinate, level columns, KPIs)
    by_child: pd.DataFrame  # index: child name; columns: runs, KPI_NAMES
    over_time: pd.DataFrame  # index: period start (datetime); columns: runs, KPI_NAMES
    outliers: list[Outlier] = field(default_factory=list)
    total_runs: int = 0  # runs with raw bags under the filter (from the inventory)
    analysed_runs: int = 0
    unplaced: int = 0  # analysed runs without a usable time (left out of over_time)

    @property
    def not_analysed(self) -> int:
        """Return the runs under the filter still to analyse."""
        return max(0, self.total_runs - self.analysed_runs)

    @property
    def overall(self) -> dict[str, float | None]:
        """Return the roll-up over every analysed run under the filter."""
        return self.by_child.attrs.get("overall", {})


@dataclass
class RunProfile:
    """One side of a comparison: KPIs and the distributions to overlay."""

    label: str
    coordinates: list[str]
    kpis: dict[str, float | None]
    latency_ms: list[float] = field(default_factory=list)
    fps_profile: list[float | None] = field(default_factory=list)  # mean FPS per bin of normalised time
    track_lifetimes_s: list[float] = field(default_factory=list)


@dataclass
class RunComparison:
    """Two runs (or a run and its lbid's median) side by side."""

    a: RunProfile
    b: RunProfile

    def differences(self) -> dict[str, float | None]:
        """Return b − a for every KPI both sides have."""
        out: dict[str, float | None] = {}
        for name in KPI_NAMES:
            va, vb = self.a.kpis.get(name), self.b.kpis.get(name)
            out[name] = None if va is None or vb is None else vb - va
        return out


class BatchRunState(StrEnum):
    """Where one run of a batch stands."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    EXTRACTING = "extracting"
    ANALYSING = "analysing"
    ANALYSED = "analysed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Tell whether the run is done with, one way or another."""
        return self in (BatchRunState.ANALYSED, BatchRunState.FAILED, BatchRunState.CANCELLED)


@dataclass
class BatchRun:
    """One run of a batch: its state, the job of its current step, and why it failed."""

    coordinate: str
    state: BatchRunState = BatchRunState.QUEUED
    job_id: str | None = None
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return JSON data."""
        return {"coordinate": self.coordinate, "state": self.state.value, "job_id": self.job_id, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchRun:
        """Build from to_dict's output."""
        return cls(
            str(data["coordinate"]), BatchRunState(data["state"]), data.get("job_id"), str(data.get("error", ""))
        )


@dataclass
class BatchRecord:
    """A batch: the runs it analyses, each with its state; the job that drives it carries the overall status."""

    batch_id: str
    filters: dict[str, str]
    created_by: str
    created_at: float
    concurrency: int
    runs: list[BatchRun]
    job_id: str = ""
    status: str = "pending"  # the driving job's ProcessingStatus value
    message: str = ""

    def counts(self) -> dict[str, int]:
        """Return how many runs are in each state."""
        out = {state.value: 0 for state in BatchRunState}
        for run in self.runs:
            out[run.state.value] += 1
        return out

    @property
    def finished(self) -> int:
        """Return how many runs are done with."""
        return sum(run.state.is_final for run in self.runs)

    @property
    def percent(self) -> float:
        """Return the share of runs done with, in percent."""
        return 100.0 * self.finished / len(self.runs) if self.runs else 100.0

    def to_dict(self, *, with_runs: bool = True) -> dict[str, Any]:
        """Return JSON data."""
        doc: dict[str, Any] = {
            "batch_id": self.batch_id,
            "filters": dict(self.filters),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "concurrency": self.concurrency,
            "job_id": self.job_id,
            "status": self.status,
            "message": self.message,
            "counts": self.counts(),
            "total": len(self.runs),
        }
        if with_runs:
            doc["runs"] = [run.to_dict() for run in self.runs]
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchRecord:
        """Build from to_dict's output."""
        return cls(
            batch_id=str(data["batch_id"]),
            filters={str(k): str(v) for k, v in (data.get("filters") or {}).items()},
            created_by=str(data.get("created_by", "")),
            created_at=float(data.get("created_at", 0.0)),
            concurrency=int(data.get("concurrency", 1)),
            runs=[BatchRun.from_dict(run) for run in data.get("runs", [])],
            job_id=str(data.get("job_id", "")),
            status=str(data.get("status", "pending")),
            message=str(data.get("message", "")),
        )
