"""AnalyticsService: the analysis cache under processed/{coord}/analysis/ and when it goes stale."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from src.analytics import AnalyticsService
from src.analytics import cache as cache_module
from src.models import DataStatus, ProcessingStatus, RunCoordinate
from src.services.local_scan import LocalScan
from src.services.local_state import LocalStateService
from tests.analytics.helpers import FRAME_STAMPS, MS, detection_rows, write_csv, write_run

COORD = RunCoordinate.from_path("acme/north/f1/tw1/lb1/2024-05-14T10-32-00")
CACHE_FILES = ("metrics.json", "series.parquet", "summary.json")


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def service(data_root: Path) -> AnalyticsService:
    return AnalyticsService(LocalStateService(data_root))


@pytest.fixture
def run_dir(service: AnalyticsService) -> Path:
    return write_run(service.local.processed_path(COORD))


def test_analysis_is_possible_once_the_extraction_is_complete(service, run_dir):
    assert service.check_analysis_possible(COORD)
    (run_dir / "tracking.json").unlink()
    assert not service.check_analysis_possible(COORD)
    assert not service.check_analysis_possible("acme/north/f1/tw1/lb1/never-extracted")


def test_analyze_run_writes_the_cache_with_summary_last(service, run_dir, monkeypatch):
    replaced: list[str] = []
    real_replace = os.replace
    monkeypatch.setattr(
        cache_module.os, "replace", lambda src, dst: (replaced.append(Path(dst).name), real_replace(src, dst))
    )
    analysis = service.analyze_run(COORD)
    assert analysis.processing_status is ProcessingStatus.COMPLETE and analysis.status is DataStatus.ANALYZED
    # Each file renamed into place, summary.json last of the cache; then the fleet KPIs and a change marker.
    assert replaced[:-1] == [*CACHE_FILES, "kpis.json"] and replaced[-1][:20].isdigit()
    assert analysis.cache_path == run_dir / "analysis"
    # No temp files left.
    assert sorted(p.name for p in (run_dir / "analysis").iterdir()) == sorted([*CACHE_FILES, "kpis.json"])
    assert analysis.metrics.mean_detection_latency_ms == pytest.approx(60.0)
    assert analysis.plots.fps_figure.data and analysis.plots.latency_figure.data
    assert analysis.extracted_data.source_bags == ["drive_0.mcap"] and analysis.extracted_data.frames_df is None
    summary = json.loads((run_dir / "analysis" / "summary.json").read_text())
    assert summary["inputs"]["detections.csv"] == [
        (run_dir / "detections.csv").stat().st_size,
        (run_dir / "detections.csv").stat().st_mtime_ns,
    ]
    assert summary["summary"]["latency_p95_ms"] == pytest.approx(96.0)
    assert LocalScan(service.local.data_root).is_analyzed(COORD)


def test_the_cache_answers_until_an_output_changes(service, run_dir):
    computed = service.analyze_run(COORD)
    cached = service.get_cached_analysis(COORD)
    assert cached is not None and cached.processing_status is ProcessingStatus.CACHED
    assert cached.metrics == computed.metrics  # every list and scalar survives the round trip
    assert cached.created_at == computed.created_at
    assert service.has_current_analysis(COORD)
    again = service.analyze_run(COORD)
    assert again.processing_status is ProcessingStatus.CACHED

    stamp = FRAME_STAMPS[5]  # the extractor re-ran and found one more detection message
    write_csv(
        run_dir / "detections.csv",
        ("stamp_ns", "receive_ns", "class_id", "score", "cx", "cy", "w", "h"),
        [*detection_rows(), (stamp, stamp + 120 * MS, "bus", 0.7, 1, 1, 1, 1)],
    )
    assert service.get_cached_analysis(COORD) is None
    assert service.get_cached_data(COORD) is None and not service.has_current_analysis(COORD)
    fresh = service.analyze_run(COORD)
    assert fresh.processing_status is ProcessingStatus.COMPLETE
    assert fresh.metrics.class_counts["bus"] == 1 and len(fresh.metrics.detection_latency_ms) == 6
    assert service.get_cached_analysis(COORD).metrics == fresh.metrics


def test_touching_an_output_invalidates_the_cache(service, run_dir):
    service.analyze_run(COORD)
    st = (run_dir / "detections.csv").stat()
    os.utime(run_dir / "detections.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert service.get_cached_analysis(COORD) is None
    assert service.analyze_run(COORD).processing_status is ProcessingStatus.COMPLETE


def test_force_refresh_recomputes(service, run_dir):
    first = service.analyze_run(COORD)
    forced = service.analyze_run(COORD, force_refresh=True)
    assert forced.processing_status is ProcessingStatus.COMPLETE
    assert forced.created_at > first.created_at
    assert service.get_cached_analysis(COORD).created_at == forced.created_at


def test_get_analysis_data_feeds_the_charts(service, run_dir):
    data = service.get_analysis_data(COORD)
    assert data.counts["frame_messages"] == 17
    cached = service.get_cached_data(COORD)
    assert cached is not None and cached.series.frames.t.tolist() == data.series.frames.t.tolist()
    assert cached.series.t0_ns == data.series.t0_ns == FRAME_STAMPS[0]
    assert service.get_cached_analysis(COORD, with_plots=False).plots is None


def test_other_parameters_do_not_reuse_the_cache(service, run_dir):
    service.analyze_run(COORD)
    other = AnalyticsService(service.local, rolling_window_s=2.0)
    assert other.get_cached_analysis(COORD) is None
    assert other.analyze_run(COORD).metrics.frame_fps_rolling[10] == pytest.approx(5.5)  # 11 frames / 2 s


@pytest.mark.parametrize("damage", ["summary", "metrics", "series", "mixed"])
def test_a_damaged_or_mixed_cache_reads_as_missing(service, run_dir, damage):
    service.analyze_run(COORD)
    analysis = run_dir / "analysis"
    if damage == "summary":
        (analysis / "summary.json").write_text("{not json")
    elif damage == "metrics":
        (analysis / "metrics.json").unlink()
    elif damage == "series":
        (analysis / "series.parquet").write_bytes(b"PAR1 truncated")
    else:  # metrics.json of another analysis (two workers writing at once)
        doc = json.loads((analysis / "metrics.json").read_text())
        (analysis / "metrics.json").write_text(json.dumps({**doc, "analysis_id": "other"}))
    assert service.get_cached_analysis(COORD) is None
    assert service.analyze_run(COORD).processing_status is ProcessingStatus.COMPLETE


def test_a_run_that_is_not_extracted_fails_with_its_reason(service, data_root):
    analysis = service.analyze_run(COORD)
    assert analysis.processing_status is ProcessingStatus.FAILED
    assert analysis.status is DataStatus.NOT_DOWNLOADED
    assert "not extracted" in analysis.error_message and "frames.csv" in analysis.error_message
    assert service.get_cached_analysis(COORD) is None


def test_unreadable_outputs_fail_without_a_cache(service, run_dir):
    write_csv(run_dir / "frames.csv", ("bag", "topic", "frame_index"), [("a", "/cam", 1)])
    analysis = service.analyze_run(COORD)
    assert analysis.processing_status is ProcessingStatus.FAILED and analysis.status is DataStatus.ERROR
    assert "missing column 'stamp_ns'" in analysis.error_message
    assert not (run_dir / "analysis" / "summary.json").exists()


def test_an_unwritable_cache_still_returns_the_analysis(service, run_dir, monkeypatch):
    def refuse(*_args: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr("src.analytics.service.write_cache", refuse)
    analysis = service.analyze_run(COORD)
    assert analysis.processing_status is ProcessingStatus.COMPLETE and analysis.cache_path is None
    assert analysis.metrics.total_tracks == 2
