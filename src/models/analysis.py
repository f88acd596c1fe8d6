"""Extracted data, computed metrics and figures for one analysed run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import plotly.graph_objects as go

from src.models.coordinate import RunCoordinate
from src.models.status import DataStatus, ProcessingStatus


def _utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


@dataclass
class ExtractedData:
    """Hold the files an extraction produced, loaded into memory."""

    frames_df: pd.DataFrame | None = None
    detections_df: pd.DataFrame | None = None
    tracking_df: pd.DataFrame | None = None
    detections_json: dict[str, Any] | None = None
    tracking_json: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    extraction_time: datetime | None = None
    source_bags: list[str] = field(default_factory=list)


@dataclass
class AnalysisMetrics:
    """Hold the perception metrics computed from a run's extracted data."""

    frame_fps_instant: list[float] | None = None
    frame_fps_rolling: list[float] | None = None
    detection_fps_instant: list[float] | None = None
    detection_fps_rolling: list[float] | None = None
    detection_latency_ms: list[float] | None = None
    mean_detection_latency_ms: float | None = None
    detections_over_time: list[int] | None = None
    tracks_over_time: list[int] | None = None
    total_tracks: int | None = None
    avg_track_lifetime: float | None = None
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None
    mean_frame_fps: float | None = None
    mean_detection_fps: float | None = None
    frame_drops: list[dict[str, float]] | None = None
    class_counts: dict[str, int] | None = None

    SCALAR_FLOAT_FIELDS: ClassVar[tuple[str, ...]] = (
        "mean_detection_latency_ms",
        "avg_track_lifetime",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "mean_frame_fps",
        "mean_detection_fps",
    )

    def to_summary(self) -> dict[str, float | int | None]:
        """Return the scalar metrics as plain JSON numbers (NaN and infinity become None)."""
        summary: dict[str, float | int | None] = {}
        for name in self.SCALAR_FLOAT_FIELDS:
            value = getattr(self, name)
            summary[name] = None if value is None or not math.isfinite(value) else float(value)
        summary["total_tracks"] = None if self.total_tracks is None else int(self.total_tracks)
        return summary


@dataclass
class AnalysisPlots:
    """Hold the figures drawn for one run."""

    fps_figure: go.Figure | None = None
    stats_figure: go.Figure | None = None
    latency_figure: go.Figure | None = None
    lifecycle_figure: go.Figure | None = None


@dataclass
class RunAnalysis:
    """Bundle everything known about the analysis of one run."""

    coordinate: RunCoordinate
    status: DataStatus
    processing_status: ProcessingStatus = ProcessingStatus.PENDING
    extracted_data: ExtractedData | None = None
    metrics: AnalysisMetrics | None = None
    plots: AnalysisPlots | None = None
    created_at: datetime = field(default_factory=_utc_now)
    updated_at: datetime = field(default_factory=_utc_now)
    error_message: str | None = None
    cache_path: Path | None = None
