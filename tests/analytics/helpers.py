"""Hand-built extraction outputs with answers computable by hand, written like the extractor writes them."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from src.analytics import RunAnalysisData, compute_metrics

T0 = 1_700_000_000_000_000_000  # an epoch-nanosecond origin: float64 cannot hold it exactly, int64 must
MS = 1_000_000
S = 1_000_000_000

FRAME_HEADER = ("bag", "topic", "stamp_ns", "receive_ns", "frame_index")
DETECTION_HEADER = ("stamp_ns", "receive_ns", "class_id", "score", "cx", "cy", "w", "h")
TRACKING_HEADER = ("stamp_ns", "receive_ns", "track_id", "class_id", "score", "cx", "cy", "w", "h")

# 10 Hz from 0.0 s to 1.0 s, a 0.5 s gap, then 10 Hz from 1.5 s to 2.0 s: 17 frames, one drop at 1.0 s.
FRAME_STAMPS = [T0 + i * 100 * MS for i in range(11)] + [T0 + 1500 * MS + i * 100 * MS for i in range(6)]
# Five detection messages (frames 0-4) with latencies 20..100 ms and two detections each.
LATENCIES_MS = (20, 40, 60, 80, 100)
DETECTION_CLASSES = (("car", "pedestrian"), ("car", "car"), ("car", "truck"), ("pedestrian", "car"), ("car", "car"))
# Track 7 lives 0.0-0.3 s, track 9 lives 0.1-0.5 s; at 0.1 s both are active.
TRACKS = ((0, 7), (1, 7), (1, 9), (3, 7), (5, 9))


def frame_rows(stamps: Iterable[int] = FRAME_STAMPS, topic: str = "/cam/front") -> list[tuple[object, ...]]:
    """Return frames.csv rows for the stamps, received 5 ms after each."""
    return [("drive_0.mcap", topic, stamp, stamp + 5 * MS, index) for index, stamp in enumerate(stamps)]


def detection_rows() -> list[tuple[object, ...]]:
    """Return detections.csv rows: two per message for frames 0-4, latencies LATENCIES_MS."""
    rows = []
    for index, (latency, classes) in enumerate(zip(LATENCIES_MS, DETECTION_CLASSES, strict=True)):
        stamp = FRAME_STAMPS[index]
        rows += [(stamp, stamp + latency * MS, cls, 0.9, 10.0, 20.0, 5.0, 8.0) for cls in classes]
    return rows


def tracking_rows() -> list[tuple[object, ...]]:
    """Return tracking.csv rows of TRACKS (frame index, track id)."""
    return [(FRAME_STAMPS[i], FRAME_STAMPS[i] + 30 * MS, tid, "car", 0.8, 1.0, 2.0, 3.0, 4.0) for i, tid in TRACKS]


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a CSV with a header line (header only when rows is empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_run(
    directory: Path,
    frames: Iterable[Sequence[object]] | None = None,
    detections: Iterable[Sequence[object]] | None = None,
    tracking: Iterable[Sequence[object]] | None = None,
) -> Path:
    """Write all six extraction outputs into directory (hand-built defaults for the tables not given)."""
    frames = frame_rows() if frames is None else frames
    detections = detection_rows() if detections is None else detections
    tracking = tracking_rows() if tracking is None else tracking
    write_csv(directory / "frames.csv", FRAME_HEADER, frames)
    write_csv(directory / "detections.csv", DETECTION_HEADER, detections)
    write_csv(directory / "tracking.csv", TRACKING_HEADER, tracking)
    (directory / "detections.json").write_text(json.dumps({"messages": 5}), encoding="utf-8")
    (directory / "tracking.json").write_text(json.dumps({"messages": 4}), encoding="utf-8")
    metadata = {"source_bags": ["drive_0.mcap"], "topics": {"image": "/cam/front"}, "warnings": []}
    (directory / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return directory


def tables(
    frames: Iterable[Sequence[object]] | None = None,
    detections: Iterable[Sequence[object]] | None = None,
    tracking: Iterable[Sequence[object]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return the three tables as DataFrames with the CSV column names (no file round trip)."""
    return (
        pd.DataFrame(frame_rows() if frames is None else list(frames), columns=list(FRAME_HEADER)),
        pd.DataFrame(detection_rows() if detections is None else list(detections), columns=list(DETECTION_HEADER)),
        pd.DataFrame(tracking_rows() if tracking is None else list(tracking), columns=list(TRACKING_HEADER)),
    )


def chart_fixture() -> RunAnalysisData:
    """Return a small analysed run in which every run analysis chart has something to draw."""
    return compute_metrics(*tables())


def images_only_fixture() -> RunAnalysisData:
    """Return an analysed run with frames but header-only detection and tracking tables."""
    return compute_metrics(*tables(detections=[], tracking=[]))
