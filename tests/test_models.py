"""Tests for the data models in src.models."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.models import (
    HIERARCHY_LEVELS,
    MAX_PART_LENGTH,
    AnalysisMetrics,
    CloudRawStatus,
    CoverageStatistics,
    DataStatus,
    DownloadJob,
    ExtractionJob,
    ExtractionStatus,
    LocalRawStatus,
    NextAction,
    ProcessingStatus,
    RunAnalysis,
    RunCoordinate,
    RunState,
    TemporalData,
)

valid_parts = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/\\"),
    min_size=1,
    max_size=MAX_PART_LENGTH,
).filter(lambda s: ".." not in s and s != ".")
coordinates = st.builds(RunCoordinate, *([valid_parts] * len(HIERARCHY_LEVELS)))
bad_tokens = st.sampled_from(["..", "/", "\\", "\x00"]) | st.characters(categories=("Cc",))

COORD = RunCoordinate("c1", "eu", "f-7", "tw3", "lb2", "2024-05-01T10-00-00")
WHEN = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)


@given(coordinates)
def test_path_round_trip(coord: RunCoordinate) -> None:
    assert RunCoordinate.from_path(coord.to_path_str()) == coord
    assert RunCoordinate.from_dict(json.loads(json.dumps(coord.to_dict()))) == coord
    assert coord.to_path_tuple() == tuple(coord.to_dict()[level] for level in HIERARCHY_LEVELS)


@given(
    st.lists(valid_parts, min_size=6, max_size=6),
    st.sampled_from(HIERARCHY_LEVELS),
    bad_tokens,
    st.integers(min_value=0, max_value=MAX_PART_LENGTH),
)
def test_bad_part_is_rejected_by_name(parts: list[str], level: str, token: str, position: int) -> None:
    values = dict(zip(HIERARCHY_LEVELS, parts, strict=True))
    original = values[level]
    values[level] = original[:position] + token + original[position:]
    with pytest.raises(ValueError, match=f"^{level} "):
        RunCoordinate(**values)


@pytest.mark.parametrize("bad", ["", ".", "..", "../etc", "a/b", "a\\b", "a\x00", "a\x7f", "a\nb", 7])
def test_traversal_and_bad_values_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^fieldid "):
        RunCoordinate("c", "r", bad, "t", "l", "ts")  # type: ignore[arg-type]


def test_length_limit() -> None:
    assert RunCoordinate("c", "r", "f", "t", "l", "x" * MAX_PART_LENGTH).timestamp == "x" * 128
    with pytest.raises(ValueError, match=r"^timestamp is longer than 128"):
        RunCoordinate("c", "r", "f", "t", "l", "x" * (MAX_PART_LENGTH + 1))


@pytest.mark.parametrize("path", ["c/r/f/t/l", "c/r/f/t/l/ts/extra", "/c/r/f/t/l/ts", "c/r/f/t/l/ts/", ""])
def test_from_path_wrong_part_count(path: str) -> None:
    with pytest.raises(ValueError, match="needs 6 parts"):
        RunCoordinate.from_path(path)


def test_from_filters_and_missing_levels() -> None:
    assert RunCoordinate.from_filters(COORD.filters(), COORD.timestamp) == COORD
    with pytest.raises(ValueError, match="missing timestamp"):
        RunCoordinate.from_dict(COORD.filters())


def test_enums_are_strings_and_terminal_states() -> None:
    assert DataStatus.NOT_DOWNLOADED == "not_downloaded"
    assert json.dumps(NextAction.ANALYZE) == '"analyze"'
    terminal = {s for s in ProcessingStatus if s.is_terminal}
    assert terminal == {"complete", "failed", "cached", "cancelled"}


def _statuses(
    *, cloud_bags: int = 2, downloaded: bool = True, extracted: bool = True
) -> tuple[CloudRawStatus, LocalRawStatus, ExtractionStatus]:
    names = [f"bag_{i}.bag" for i in range(cloud_bags)]
    cloud = CloudRawStatus(exists=cloud_bags > 0, bag_count=cloud_bags, bag_names=names, total_size=10)
    local = LocalRawStatus(downloaded, cloud_bags if downloaded else 0, names if downloaded else [], 10, "/d")
    present = ExtractionStatus.expected_files() if extracted else ["frames.csv"]
    return cloud, local, ExtractionStatus.from_present(present, path="/d/out")


@pytest.mark.parametrize(
    ("downloaded", "extracted", "analyzed", "status", "action", "ready"),
    [
        (False, False, False, DataStatus.NOT_DOWNLOADED, NextAction.DOWNLOAD, False),
        (True, False, False, DataStatus.DOWNLOADED, NextAction.EXTRACT, False),
        (True, False, True, DataStatus.DOWNLOADED, NextAction.EXTRACT, False),
        (True, True, False, DataStatus.EXTRACTED, NextAction.ANALYZE, True),
        (True, True, True, DataStatus.ANALYZED, NextAction.COMPLETE, True),
    ],
)
def test_run_state_derive(
    downloaded: bool, extracted: bool, analyzed: bool, status: DataStatus, action: NextAction, ready: bool
) -> None:
    cloud, local, extraction = _statuses(downloaded=downloaded, extracted=extracted)
    state = RunState.derive(COORD, cloud, local, extraction, analyzed=analyzed)
    assert (state.pipeline_status, state.next_action, state.ready_for_analysis) == (status, action, ready)
    assert state.analyzed is (status is DataStatus.ANALYZED)
    assert state.blocked_reason is None
    assert RunState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_run_state_blocked_when_cloud_is_empty() -> None:
    state = RunState.derive(COORD, *_statuses(cloud_bags=0, downloaded=False), analyzed=False)
    assert state.next_action is NextAction.DOWNLOAD
    assert state.blocked_reason == "no bags in the cloud"


def test_extraction_status_expected_files() -> None:
    assert set(ExtractionStatus.expected_files()) == {
        "frames.csv", "detections.csv", "tracking.csv", "detections.json", "tracking.json", "metadata.json"
    }  # fmt: skip
    partial = ExtractionStatus.from_present(["frames.csv", "other.txt"])
    assert not partial.extracted
    assert "frames.csv" not in partial.missing_files
    assert len(partial.missing_files) == 5


def _download_job() -> DownloadJob:
    return DownloadJob(
        "job-1", COORD, "raw-bucket", Path("/data/raw/c1"), ["a.bag", "b.bag"], 2, 1, 400, 100,
        ProcessingStatus.IN_PROGRESS, WHEN, None, None,
    )  # fmt: skip


def _extraction_job() -> ExtractionJob:
    return ExtractionJob(
        "job-2", COORD, Path("/data/raw"), Path("/data/out"), 4, 3, 900,
        ProcessingStatus.FAILED, WHEN, WHEN, "boom", "docker log",
    )  # fmt: skip


SERIALISABLE = [
    COORD,
    *_statuses(),
    RunState.derive(COORD, *_statuses(), analyzed=True),
    _download_job(),
    _extraction_job(),
    DownloadJob("job-3", COORD, "bucket", Path("/t")),
    TemporalData(["2024-05-01", "2024-05-02"], [2, 0], [17, 3], [50.0, 0.0], 17),
    CoverageStatistics(2, 2, 20, 50.0, 25.0, 1, [("2024-05-01", 50.0, 2, 17)]),
]


@pytest.mark.parametrize("model", SERIALISABLE, ids=lambda m: type(m).__name__)
def test_to_dict_from_dict_round_trip(model: object) -> None:
    data = json.loads(json.dumps(model.to_dict()))  # type: ignore[attr-defined]
    assert type(model).from_dict(data) == model  # type: ignore[attr-defined]


def test_job_dicts_use_plain_values() -> None:
    data = _download_job().to_dict()
    assert data["status"] == "in_progress"
    assert data["target_path"] == "/data/raw/c1"
    assert data["started_at"] == "2024-05-01T10:30:00+00:00"
    assert data["coordinate"]["lbid"] == "lb2"


def test_progress_percent() -> None:
    assert _download_job().progress_percent == 25.0
    assert DownloadJob("j", COORD, "b", Path("/t")).progress_percent == 0.0
    assert _extraction_job().progress_percent == 75.0
    assert ExtractionJob("j", COORD, Path("/s"), Path("/o")).progress_percent == 0.0


@pytest.mark.parametrize(
    ("bags", "samples", "expected"),
    [
        (2, 17, 50.0),
        (2, 0, 100.0),
        (2, 40, 0.0),
        (2, 34, 0.0),
        (0, 0, 0.0),
        (0, 5, 0.0),
        (1, 1, (1 - 1 / 17) * 100),
    ],
)
def test_gap_percent(bags: int, samples: int, expected: float) -> None:
    assert math.isclose(TemporalData.gap_percent(bags, samples, 17), expected)


def test_gap_percent_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        TemporalData.gap_percent(1, 1, 0)
    with pytest.raises(ValueError, match="negative"):
        TemporalData.gap_percent(-1, 1, 17)


def test_temporal_data_length_mismatch_and_frame() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        TemporalData(["a", "b"], [1], [1, 2], [0.0, 0.0], 17)
    frame = TemporalData(["a", "b"], [2, 0], [17, 3], [50.0, 0.0], 17).to_frame()
    assert list(frame.columns) == ["timestamp", "raw_bags", "ml_samples", "gap_pct"]
    assert frame["gap_pct"].tolist() == [50.0, 0.0]


def test_metrics_summary_is_scalar_and_json_safe() -> None:
    metrics = AnalysisMetrics(
        frame_fps_instant=[10.0, 9.0], mean_detection_latency_ms=float("nan"), total_tracks=3,
        latency_p95_ms=42.5, frame_drops=[{"start_s": 1.0, "duration_s": 0.5}], class_counts={"car": 3},
    )  # fmt: skip
    summary = metrics.to_summary()
    json.dumps(summary, allow_nan=False)
    assert summary["total_tracks"] == 3
    assert summary["latency_p95_ms"] == 42.5
    assert summary["mean_detection_latency_ms"] is None
    assert not {"frame_fps_instant", "frame_drops", "class_counts"} & summary.keys()


def test_run_analysis_defaults() -> None:
    analysis = RunAnalysis(COORD, DataStatus.EXTRACTED)
    assert analysis.processing_status is ProcessingStatus.PENDING
    assert analysis.created_at.tzinfo is not None
    assert analysis.metrics is None
    assert analysis.cache_path is None
