"""MomentsService: a run's moments, computed from its current analysis and kept in analysis/moments.json.

moments.json records the analysis id it was derived from and the thresholds; when either differs (a new
analysis, other settings) the moments are computed again. The analyse job computes them right after the
metrics; a view that finds none computes them on the spot (≤ 0.5 s for a 100k-frame, 1M-detection run).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from src.analytics.cache import read_summary, write_atomically
from src.analytics.loading import AnalysisInputError
from src.analytics.moments import MomentSettings, find_moments, load_track_points
from src.analytics.service import AnalyticsService
from src.models import Moment, RunCoordinate

log = structlog.get_logger("bagboard.moments")

MOMENTS_FILE = "moments.json"
MOMENTS_VERSION = 1


def moment_settings(settings: Any) -> MomentSettings:
    """Return the thresholds from the app's Settings (its moment_* fields)."""
    return MomentSettings(
        per_kind=settings.moment_per_kind,
        latency_ms=float(settings.moment_latency_ms),
        separation_s=settings.moment_separation_s,
        detection_jump=settings.moment_detection_jump,
        burst_window_s=settings.moment_burst_window_s,
        burst_tracks=settings.moment_burst_tracks,
        fragment_gap_s=settings.moment_fragment_gap_s,
        fragment_distance_px=settings.moment_fragment_distance_px,
    )


class MomentsService:
    """Find and cache the moments of analysed runs."""

    def __init__(self, analytics: AnalyticsService, settings: MomentSettings | None = None) -> None:
        self.analytics = analytics
        self.settings = settings or MomentSettings()
        self._lock = threading.Lock()

    def get_moments(self, coord: RunCoordinate, *, refresh: bool = False) -> list[Moment] | None:
        """Return the run's moments, best first; None when the run has no current analysis."""
        if not self.analytics.has_current_analysis(coord):
            return None
        analysis_dir = self.analytics.analysis_path(coord)
        if not refresh and (cached := self._read(analysis_dir)) is not None:
            return cached
        with self._lock:  # one computation at a time in this process: a second caller then reads the file
            if not refresh and (cached := self._read(analysis_dir)) is not None:
                return cached
            data = self.analytics.get_cached_data(coord)
            summary = read_summary(analysis_dir)
            if data is None or summary is None:
                return None
            started = time.perf_counter()
            try:
                tracks = load_track_points(self.analytics.local.processed_path(coord))
            except AnalysisInputError as exc:
                log.warning("moments_without_tracks", coordinate=str(coord), error=str(exc))
                tracks = None
            moments = find_moments(data, tracks, self.settings)
            doc = {
                "version": MOMENTS_VERSION,
                "analysis_id": summary.get("analysis_id"),
                "settings": self.settings.to_dict(),
                "moments": [moment.to_dict() for moment in moments],
            }
            try:
                write_atomically(
                    analysis_dir / MOMENTS_FILE, lambda tmp: tmp.write_text(json.dumps(doc), encoding="utf-8")
                )
            except OSError as exc:  # a read-only disk costs the cache, not the answer
                log.warning("moments_not_cached", coordinate=str(coord), error=str(exc))
            log.info(
                "moments_found", coordinate=str(coord), moments=len(moments), seconds=time.perf_counter() - started
            )
            return moments

    def _read(self, analysis_dir: Path) -> list[Moment] | None:
        """Return cached moments if they belong to the current analysis and thresholds, else None."""
        try:
            doc = json.loads((analysis_dir / MOMENTS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        summary = read_summary(analysis_dir)
        if (
            not isinstance(doc, dict)
            or summary is None
            or doc.get("version") != MOMENTS_VERSION
            or doc.get("analysis_id") != summary.get("analysis_id")
            or doc.get("settings") != self.settings.to_dict()
        ):
            return None
        try:
            return [Moment.from_dict(item) for item in doc.get("moments", [])]
        except (KeyError, TypeError, ValueError):
            return None
