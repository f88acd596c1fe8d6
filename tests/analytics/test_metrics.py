"""compute_metrics on hand-built tables whose answers are worked out by hand in the comments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.analytics import COLUMNS, AnalysisInputError, compute_metrics, load_extracted
from tests.analytics.helpers import (
    DETECTION_HEADER,
    FRAME_STAMPS,
    MS,
    T0,
    detection_rows,
    frame_rows,
    tables,
    tracking_rows,
    write_csv,
    write_run,
)


@pytest.fixture
def result():
    return compute_metrics(*tables())


# -- frames -----------------------------------------------------------------------------------------


def test_instant_frame_fps_is_one_over_each_interval(result):
    # 10 intervals of 0.1 s, the 0.5 s gap, 5 intervals of 0.1 s.
    assert result.metrics.frame_fps_instant == pytest.approx([10.0] * 10 + [2.0] + [10.0] * 5)
    assert result.series.frames.instant_t.tolist() == pytest.approx(
        [0.1 * i for i in range(1, 11)] + [1.5, 1.6, 1.7, 1.8, 1.9, 2.0]
    )


def test_rolling_frame_fps_counts_the_trailing_window(result):
    rolling = dict(zip(result.series.frames.t.round(6).tolist(), result.metrics.frame_fps_rolling, strict=True))
    assert rolling[0.0] == 1.0  # the window is not full yet: 1 frame / 1 s
    assert rolling[0.5] == 6.0  # 0.0 … 0.5
    assert rolling[1.0] == 10.0  # (0.0, 1.0]: 0.1 … 1.0
    assert rolling[1.5] == 6.0  # (0.5, 1.5]: 0.6 … 1.0 and 1.5
    assert rolling[2.0] == 6.0  # (1.0, 2.0]: 1.5 … 2.0


def test_rolling_window_is_a_parameter():
    half = compute_metrics(*tables(), rolling_window_s=0.5)
    rolling = dict(zip(half.series.frames.t.round(6).tolist(), half.metrics.frame_fps_rolling, strict=True))
    assert rolling[1.0] == 10.0  # (0.5, 1.0]: 5 frames / 0.5 s
    assert rolling[1.5] == 2.0  # (1.0, 1.5]: 1 frame / 0.5 s


def test_one_frame_drop_with_its_start_and_duration(result):
    # Median interval 0.1 s; only the 0.5 s interval exceeds 2 × 0.1 s.
    assert result.metrics.frame_drops == [{"start_s": pytest.approx(1.0), "duration_s": pytest.approx(0.5)}]
    assert result.counts["frame_drops"] == 1


def test_drop_factor_is_a_parameter():
    assert compute_metrics(*tables(), drop_factor=6.0).metrics.frame_drops == []  # 0.5 s is 5 × the median


def test_mean_frame_fps_is_frames_over_the_span(result):
    assert result.metrics.mean_frame_fps == pytest.approx(16 / 2.0)  # 17 frames, 16 intervals, 2.0 s
    assert result.counts["duration_s"] == pytest.approx(2.0)


def test_repeated_and_unsorted_frames_count_once():
    rows = frame_rows()
    shuffled = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))] + [rows[3], rows[3]]
    again = compute_metrics(*tables(frames=shuffled))
    assert again.metrics.frame_fps_instant == pytest.approx([10.0] * 10 + [2.0] + [10.0] * 5)  # Δt = 0 dropped
    assert again.counts["frames"] == 19 and again.counts["frame_messages"] == 17


def test_the_busiest_image_topic_is_analysed_and_named():
    rows = frame_rows() + frame_rows(stamps=[T0 + 33 * MS, T0 + 66 * MS], topic="/cam/rear")
    mixed = compute_metrics(*tables(frames=rows))
    assert mixed.counts["frame_topic"] == "/cam/front"
    assert mixed.counts["frame_messages"] == 17
    assert mixed.metrics.frame_fps_instant == pytest.approx([10.0] * 10 + [2.0] + [10.0] * 5)
    assert len(mixed.warnings) == 1 and "/cam/front" in mixed.warnings[0]


# -- detections -------------------------------------------------------------------------------------


def test_latency_mean_and_percentiles(result):
    m = result.metrics
    assert m.detection_latency_ms == pytest.approx([20, 40, 60, 80, 100])  # one value per message, not per row
    assert m.mean_detection_latency_ms == pytest.approx(60.0)
    assert m.latency_p50_ms == pytest.approx(60.0)
    assert m.latency_p95_ms == pytest.approx(96.0)  # linear: 80 + 0.8 × (100 − 80)
    assert m.latency_p99_ms == pytest.approx(99.2)


def test_latency_keeps_nanoseconds_of_epoch_stamps():
    rows = [
        (T0 + 1, T0 + 1 + 1_234_567, "car", 1, 1, 1, 1, 1),
        (T0 + 100 * MS, T0 + 100 * MS + 1, "car", 1, 1, 1, 1, 1),
    ]
    m = compute_metrics(*tables(detections=rows)).metrics
    assert m.detection_latency_ms == [1.234567, 0.000001]


def test_detection_fps_counts_messages_not_detections(result):
    # Two detections per message at 10 Hz: 10 FPS, not 20.
    assert result.metrics.detection_fps_instant == pytest.approx([10.0] * 4)
    assert result.metrics.detection_fps_rolling == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0])
    assert result.metrics.mean_detection_fps == pytest.approx(10.0)
    assert result.counts["detection_messages"] == 5 and result.counts["detections"] == 10


def test_detections_per_message_and_class_counts(result):
    assert result.metrics.detections_over_time == [2, 2, 2, 2, 2]
    assert result.metrics.class_counts == {"car": 7, "pedestrian": 2, "truck": 1}
    assert list(result.metrics.class_counts) == ["car", "pedestrian", "truck"]  # most frequent first


def test_a_row_without_class_marks_an_empty_detection_message():
    stamp = FRAME_STAMPS[5]
    rows = [*detection_rows(), (stamp, stamp + 10 * MS, "", "", "", "", "", "")]
    m = compute_metrics(*tables(detections=rows)).metrics
    assert m.detections_over_time == [2, 2, 2, 2, 2, 0]
    assert len(m.detection_fps_rolling) == 6
    assert sum(m.class_counts.values()) == 10


def test_integer_class_ids_become_text_keys(tmp_path: Path):
    rows = [(s, s + 20 * MS, cls, 0.5, 1, 1, 1, 1) for s, cls in zip(FRAME_STAMPS[:4], (3, 3, 1, ""), strict=True)]
    run = write_run(tmp_path, detections=rows)
    data = load_extracted(run)
    m = compute_metrics(data.frames_df, data.detections_df, data.tracking_df).metrics
    assert m.class_counts == {"3": 2, "1": 1}  # not "3.0": the empty id made the column nullable


# -- tracks -----------------------------------------------------------------------------------------


def test_track_lifetimes_and_average(result):
    # Track 7: 0.0 → 0.3 s; track 9: 0.1 → 0.5 s.
    assert result.series.track_lifetime_s.tolist() == pytest.approx([0.3, 0.4])
    assert result.metrics.avg_track_lifetime == pytest.approx(0.35)
    assert result.metrics.total_tracks == 2


def test_active_tracks_per_message_count_distinct_ids():
    rows = [*tracking_rows(), tracking_rows()[1]]  # track 7 listed twice in the 0.1 s message
    m = compute_metrics(*tables(tracking=rows)).metrics
    assert m.tracks_over_time == [1, 2, 1, 1]  # messages at 0.0, 0.1, 0.3, 0.5 s
    assert m.total_tracks == 2


# -- empty and broken input -------------------------------------------------------------------------


def test_header_only_detection_and_tracking_files(tmp_path: Path):
    run = write_run(tmp_path, detections=[], tracking=[])
    data = load_extracted(run)
    result = compute_metrics(data.frames_df, data.detections_df, data.tracking_df)
    m = result.metrics
    assert m.mean_frame_fps == pytest.approx(8.0)  # frames still analysed
    assert m.mean_detection_latency_ms is None and m.latency_p95_ms is None and m.mean_detection_fps is None
    assert m.detection_fps_instant == [] and m.detections_over_time == [] and m.class_counts == {}
    assert m.total_tracks == 0 and m.avg_track_lifetime is None and m.tracks_over_time == []
    summary = result.summary()
    assert summary["total_tracks"] == 0 and summary["latency_p99_ms"] is None


def test_empty_files_and_a_run_without_frames(tmp_path: Path):
    run = write_run(tmp_path, frames=[])
    (run / "tracking.csv").write_bytes(b"")  # 0 bytes: nothing recorded
    data = load_extracted(run)
    result = compute_metrics(data.frames_df, data.detections_df, data.tracking_df)
    assert result.metrics.frame_fps_instant == [] and result.metrics.mean_frame_fps is None
    assert result.metrics.frame_drops == []
    assert result.series.t0_ns == FRAME_STAMPS[0]  # the first detection message is the origin
    assert result.metrics.mean_detection_latency_ms == pytest.approx(60.0)


def test_csv_column_names_come_from_one_mapping(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(COLUMNS["detections"], "stamp_ns", "header_stamp_ns")
    header = ("header_stamp_ns", *DETECTION_HEADER[1:])
    run = write_run(tmp_path)
    write_csv(run / "detections.csv", header, detection_rows())
    data = load_extracted(run)
    assert "stamp_ns" in data.detections_df.columns
    m = compute_metrics(data.frames_df, data.detections_df, data.tracking_df).metrics
    assert m.mean_detection_latency_ms == pytest.approx(60.0)


def test_a_missing_column_is_named(tmp_path: Path):
    run = write_run(tmp_path)
    write_csv(run / "tracking.csv", ("stamp_ns", "receive_ns", "object_id"), [])
    with pytest.raises(AnalysisInputError, match=r"tracking.csv: missing column 'track_id'"):
        load_extracted(run)
    frames, detections, _ = tables()
    with pytest.raises(AnalysisInputError, match="class_id"):
        compute_metrics(frames, detections.drop(columns="class_id"), tables()[2])


def test_the_loader_reads_only_what_the_analysis_needs(tmp_path: Path):
    data = load_extracted(write_run(tmp_path))
    assert set(data.detections_df.columns) == {"stamp_ns", "recv_ns", "class_id"}
    assert data.frames_df["stamp_ns"].dtype == np.int64
    assert data.source_bags == ["drive_0.mcap"] and data.metadata["topics"] == {"image": "/cam/front"}
    full = load_extracted(tmp_path, all_columns=True, include_json=True)
    assert "score" in full.detections_df.columns and full.detections_json == {"messages": 5}


@pytest.mark.parametrize(("window", "factor"), [(0.0, 2.0), (-1.0, 2.0), (math.nan, 2.0), (1.0, 0.0)])
def test_bad_parameters_are_refused(window, factor):
    with pytest.raises(ValueError, match="must be a positive number"):
        compute_metrics(*tables(), rolling_window_s=window, drop_factor=factor)


def test_same_answer_from_files_and_from_tables(tmp_path: Path, result):
    data = load_extracted(write_run(tmp_path))
    from_files = compute_metrics(data.frames_df, data.detections_df, data.tracking_df)
    assert from_files.summary() == result.summary()
    assert pd.Series(from_files.metrics.frame_fps_rolling).equals(pd.Series(result.metrics.frame_fps_rolling))
