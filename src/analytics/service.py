"""AnalyticsService: analyse one extracted run and keep the result next to its extraction outputs."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog

from src.analytics.cache import (
    CachedAnalysis,
    fingerprint,
    is_current,
    parameters,
    read_cache,
    read_summary,
    write_cache,
)
from src.analytics.figures import build_figures
from src.analytics.kpis import kpis_doc, remove_kpis, write_kpis
from src.analytics.loading import AnalysisInputError, load_extracted, load_metadata
from src.analytics.metrics import RunAnalysisData, compute_metrics
from src.models import DataStatus, ExtractedData, ProcessingStatus, RunAnalysis, RunCoordinate
from src.services.local_scan import ANALYSIS_DIR
from src.services.local_state import LocalStateService

log = structlog.get_logger("bagboard.analytics")


class AnalyticsService:
    """Compute a run's perception metrics from its extraction outputs, cached under processed/{coord}/analysis/."""

    def __init__(self, local: LocalStateService, *, rolling_window_s: float = 1.0, drop_factor: float = 2.0) -> None:
        self.local = local
        self.rolling_window_s = rolling_window_s
        self.drop_factor = drop_factor
        self._params = parameters(rolling_window_s, drop_factor)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def analysis_path(self, coord: RunCoordinate | str) -> Path:
        """Return processed/{coord}/analysis, where the cache lives."""
        return self.local.processed_path(coord) / ANALYSIS_DIR

    def check_analysis_possible(self, coord: RunCoordinate | str) -> bool:
        """Tell whether the run's extraction is complete (every expected output present)."""
        return self.local.check_extracted(coord).extracted

    def has_current_analysis(self, coord: RunCoordinate | str) -> bool:
        """Tell cheaply (six stats and summary.json, no parquet) whether the cache matches the current outputs."""
        inputs = fingerprint(self.local.processed_path(coord))
        return is_current(read_summary(self.analysis_path(coord)), inputs, self._params)

    def get_cached_data(self, coord: RunCoordinate | str) -> RunAnalysisData | None:
        """Return the cached result for the chart modules if it matches the current outputs, else None."""
        cached = self._read(coord)
        return cached.data if cached else None

    def get_cached_analysis(self, coord: RunCoordinate | str, *, with_plots: bool = True) -> RunAnalysis | None:
        """Return the cached analysis if it matches the current extraction outputs, else None."""
        coord = _coordinate(coord)
        cached = self._read(coord)
        if cached is None:
            return None
        return self._run_analysis(
            coord, cached.data, ProcessingStatus.CACHED, cached.created_at, cached.path, with_plots
        )

    def get_analysis_data(self, coord: RunCoordinate | str, *, force_refresh: bool = False) -> RunAnalysisData:
        """Return the run's result for the chart modules: cached when current, else computed and cached.

        Raises AnalysisInputError when the run is not extracted or an output cannot be read.
        """
        return self._analyze(_coordinate(coord), force_refresh)[0]

    def analyze_run(
        self, coord: RunCoordinate | str, force_refresh: bool = False, *, with_plots: bool = True
    ) -> RunAnalysis:
        """Analyse the run (or return the current cache); failures come back as a FAILED RunAnalysis."""
        coord = _coordinate(coord)
        try:
            data, status, created_at, path = self._analyze(coord, force_refresh)
        except AnalysisInputError as exc:
            extracted = self.check_analysis_possible(coord)
            log.warning("analysis_failed", coordinate=coord.to_path_str(), error=str(exc))
            return RunAnalysis(
                coordinate=coord,
                status=DataStatus.ERROR if extracted else self._pre_extraction_status(coord),
                processing_status=ProcessingStatus.FAILED,
                error_message=str(exc),
            )
        return self._run_analysis(coord, data, status, created_at, path, with_plots)

    # -- internals ------------------------------------------------------------------------------

    def _read(self, coord: RunCoordinate | str) -> CachedAnalysis | None:
        """Read the cache if it is current for the run's outputs and this service's parameters."""
        inputs = fingerprint(self.local.processed_path(coord))
        return read_cache(self.analysis_path(coord), inputs, self._params)

    def _analyze(
        self, coord: RunCoordinate, force_refresh: bool
    ) -> tuple[RunAnalysisData, ProcessingStatus, datetime, Path | None]:
        """Return (data, CACHED or COMPLETE, when made, cache dir or None if it could not be written)."""
        if not force_refresh and (cached := self._read(coord)):
            return cached.data, ProcessingStatus.CACHED, cached.created_at, cached.path
        # One computation per run at a time in this process; a second caller waits and then finds the cache.
        with self._lock(coord):
            if not force_refresh and (cached := self._read(coord)):
                return cached.data, ProcessingStatus.CACHED, cached.created_at, cached.path
            status = self.local.check_extracted(coord)
            if not status.extracted:
                raise AnalysisInputError(
                    f"run {coord.to_path_str()} is not extracted: missing {', '.join(status.missing_files)}"
                )
            run_dir = self.local.processed_path(coord)
            # Fingerprint before reading: if the extractor rewrites a file meanwhile, this cache is stale at once.
            inputs = fingerprint(run_dir)
            started = time.perf_counter()
            extracted = load_extracted(run_dir)
            data = compute_metrics(
                extracted.frames_df,
                extracted.detections_df,
                extracted.tracking_df,
                rolling_window_s=self.rolling_window_s,
                drop_factor=self.drop_factor,
            )
            path: Path | None = self.analysis_path(coord)
            try:
                created_at = self._write(coord, data, inputs)
            except OSError as exc:  # a read-only or full disk costs the cache, not the answer
                log.warning("analysis_cache_not_written", coordinate=coord.to_path_str(), error=str(exc))
                created_at, path = datetime.now(UTC), None
            log.info(
                "run_analysed",
                coordinate=coord.to_path_str(),
                seconds=round(time.perf_counter() - started, 3),
                **{key: data.counts[key] for key in ("frame_messages", "detections", "tracks", "frame_drops")},
            )
            return data, ProcessingStatus.COMPLETE, created_at, path

    def _write(self, coord: RunCoordinate, data: RunAnalysisData, inputs: dict) -> datetime:
        """Write the cache, then the run's fleet KPIs beside it (taken away first: they describe the old one)."""
        path = self.analysis_path(coord)
        key = coord.to_path_str()
        remove_kpis(path, self.local.data_root, key)
        created_at = write_cache(path, data, inputs)
        summary = read_summary(path) or {}
        doc = kpis_doc(data, coord.timestamp, str(summary.get("analysis_id")), inputs)
        write_kpis(path, self.local.data_root, key, doc)
        return created_at

    def invalidate(self, coord: RunCoordinate | str) -> None:
        """Take the run's fleet KPIs away before its extraction outputs change (the analysis goes stale with them)."""
        coord = _coordinate(coord)
        remove_kpis(self.analysis_path(coord), self.local.data_root, coord.to_path_str())

    def _run_analysis(
        self,
        coord: RunCoordinate,
        data: RunAnalysisData,
        status: ProcessingStatus,
        created_at: datetime,
        path: Path | None,
        with_plots: bool,
    ) -> RunAnalysis:
        """Wrap a result in the RunAnalysis model (the big tables stay out of it: load_extracted reads them)."""
        run_dir = self.local.processed_path(coord)
        return RunAnalysis(
            coordinate=coord,
            status=DataStatus.ANALYZED,
            processing_status=status,
            extracted_data=_metadata(run_dir),
            metrics=data.metrics,
            plots=build_figures(data) if with_plots else None,
            created_at=created_at,
            updated_at=datetime.now(UTC),
            cache_path=path,
        )

    def _pre_extraction_status(self, coord: RunCoordinate) -> DataStatus:
        """Return where a not-yet-extracted run stands."""
        downloaded = self.local.check_raw_downloaded(coord).downloaded
        return DataStatus.DOWNLOADED if downloaded else DataStatus.NOT_DOWNLOADED

    def _lock(self, coord: RunCoordinate) -> threading.Lock:
        """Return the lock of one run."""
        with self._locks_guard:
            return self._locks.setdefault(coord.to_path_str(), threading.Lock())


def _metadata(run_dir: Path) -> ExtractedData:
    """Return the run's metadata without the tables; an unreadable metadata.json only costs the metadata."""
    try:
        return load_metadata(run_dir)
    except AnalysisInputError:
        return ExtractedData()


def _coordinate(coord: RunCoordinate | str) -> RunCoordinate:
    """Accept a RunCoordinate or its path string."""
    return coord if isinstance(coord, RunCoordinate) else RunCoordinate.from_path(coord)
