"""Moments on a hand-built run whose every remarkable moment is known: one of each kind, ranked, with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.analytics import AnalyticsService, compute_metrics, load_extracted
from src.analytics.__main__ import main as cli
from src.analytics.moment_store import MOMENTS_FILE, MomentsService
from src.analytics.moments import MomentSettings, find_moments, load_track_points
from src.models import RunCoordinate
from src.services.local_state import LocalStateService
from tests.analytics.helpers import MS, T0, frame_rows, write_run

S = 1_000_000_000
PERIOD = 100 * MS  # 10 Hz
# 20 s of frames with one 1.5 s gap starting after the frame at 3.0 s.
STAMPS = [T0 + i * PERIOD for i in range(31)] + [T0 + 4500 * MS + i * PERIOD for i in range(156)]
SPIKE_AT, JUMP_AT, BURST_AT, FRAGMENT_AT = 70, 120, 150, 50  # frame positions (×0.1 s after the gap's 1.4 s)


def detection_rows() -> list[tuple[object, ...]]:
    """Two detections per frame at 50 ms, a 300 ms spike, and nine detections for a few frames."""
    rows = []
    for k, stamp in enumerate(STAMPS):
        latency = 300 if k == SPIKE_AT else 50
        count = 9 if JUMP_AT <= k < JUMP_AT + 3 else 2
        rows += [(stamp, stamp + latency * MS, "car", 0.9, 10.0, 20.0, 5.0, 8.0)] * count
    return rows


def tracking_rows() -> list[tuple[object, ...]]:
    """A long track, five tracks born together, and car 7 replaced by car 8 ten px away 0.3 s after it ends."""
    rows = []
    for k, stamp in enumerate(STAMPS):
        row = (stamp, stamp + 60 * MS)
        rows.append((*row, "1", "truck", 0.9, 300.0, 200.0, 40.0, 30.0))
        if 10 <= k <= FRAGMENT_AT:
            rows.append((*row, "7", "car", 0.9, 100.0, 100.0, 20.0, 10.0))
        if FRAGMENT_AT + 3 <= k <= FRAGMENT_AT + 20:
            rows.append((*row, "8", "car", 0.9, 110.0, 100.0, 20.0, 10.0))
            rows.append((*row, "9", "pedestrian", 0.9, 105.0, 100.0, 5.0, 10.0))  # close, but another class
        if k >= BURST_AT:
            rows += [
                (*row, str(100 + n), "car", 0.9, 50.0 * n, 300.0, 20.0, 10.0) for n in range(5) if k >= BURST_AT + n
            ]
    return rows


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", frame_rows(STAMPS), detection_rows(), tracking_rows())


def moments_of(run_dir: Path, settings: MomentSettings | None = None):
    data = load_extracted(run_dir)
    analysis = compute_metrics(data.frames_df, data.detections_df, data.tracking_df)
    return find_moments(analysis, load_track_points(run_dir), settings)


def seconds(position: int) -> float:
    return (STAMPS[position] - T0) / S


def test_each_kind_is_found_where_it_happened(run_dir: Path) -> None:
    found: dict = {}
    for moment in moments_of(run_dir):
        found.setdefault(moment.kind, moment)  # the best of each kind
    assert set(found) == {"latency", "drop", "detection_jump", "track_burst", "fragmentation"}
    assert found["latency"].t_s == pytest.approx(seconds(SPIKE_AT))
    assert found["latency"].reason.startswith("detection latency 300 ms")
    assert found["drop"].t_s == pytest.approx(3.0) and "no frame for 1.50 s (15×" in found["drop"].reason
    assert found["detection_jump"].t_s == pytest.approx(seconds(JUMP_AT))
    assert "detections 2 → 9 (+7)" in found["detection_jump"].reason
    assert found["track_burst"].t_s == pytest.approx(seconds(BURST_AT))
    assert found["track_burst"].reason == "5 tracks born within 1 s"
    assert found["fragmentation"].t_s == pytest.approx(seconds(FRAGMENT_AT + 3))
    assert found["fragmentation"].reason == "track 7 (car) ends and track 8 starts 0.30 s later, 10 px away"
    assert all(moment.score >= 1 for moment in found.values())


def test_moments_are_ranked_and_thresholds_apply(run_dir: Path) -> None:
    moments = moments_of(run_dir)
    assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    strict = MomentSettings(latency_ms=400, detection_jump=8, burst_tracks=6, fragment_distance_px=5)
    kinds = {moment.kind for moment in moments_of(run_dir, strict)}
    assert kinds == {"drop"}  # the drop follows the analysis' own 2× rule, not these settings


def test_a_run_without_detections_or_tracks_has_only_its_drops(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run", frame_rows(STAMPS), [], [])
    assert [moment.kind for moment in moments_of(run_dir)] == ["drop"]


def test_moments_are_cached_next_to_the_analysis(tmp_path: Path) -> None:
    coord = RunCoordinate("a", "b", "c", "d", "e", "f")
    local = LocalStateService(tmp_path / "data")
    write_run(local.processed_path(coord), frame_rows(STAMPS), detection_rows(), tracking_rows())
    analytics = AnalyticsService(local)
    service = MomentsService(analytics)
    assert service.get_moments(coord) is None  # not analysed yet
    analytics.analyze_run(coord)
    moments = service.get_moments(coord)
    assert moments and (analytics.analysis_path(coord) / MOMENTS_FILE).is_file()
    assert service.get_moments(coord) == moments
    other = MomentsService(analytics, MomentSettings(per_kind=1, latency_ms=1))
    assert len(other.get_moments(coord)) == 5  # other thresholds: computed again, one of each kind


def test_the_cli_reports_moments_and_their_thresholds(run_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BAGBOARD_MOMENT_DETECTION_JUMP", "6")
    assert cli([str(run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["moment_settings"]["detection_jump"] == 6
    assert {moment["kind"] for moment in summary["moments"]} == {
        "latency",
        "drop",
        "detection_jump",
        "track_burst",
        "fragmentation",
    }
    assert cli([str(run_dir)]) == 0
    assert "fragmentation: track 7 (car) ends" in capsys.readouterr().out
