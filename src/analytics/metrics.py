"""Per-run perception metrics from the extraction tables: FPS, latency, detections, tracks and frame drops.

Everything here is a pure function of the three tables (no files, no Dash) and vectorised with numpy: the
only per-row work is done by numpy/pandas kernels, so a run of a million detections takes milliseconds.

Definitions (all times come from header stamps, in integer nanoseconds, so exact grids give exact answers):

- A frame message is one row of frames.csv; rows with the same stamp count once (a re-recorded frame is not a
  new frame, and its Δt of 0 would be an infinite rate). When frames.csv holds several image topics, the
  metrics use the busiest one and say so in ``warnings``.
- A detection (tracking) message is one distinct ``stamp_ns`` in detections.csv (tracking.csv). A row whose
  ``class_id`` (``track_id``) is empty marks a message without objects: it counts as a message, not an object.
- Instant FPS is 1 / Δt between consecutive messages; rolling FPS at a message is the number of messages in the
  trailing window (t − window, t] divided by the window. The first ``window`` seconds therefore read low (the
  window is not full yet); after that the value is exact.
- Latency of a detection message is its earliest receive time minus its header stamp.
- A frame drop is an interval between consecutive frames longer than ``drop_factor`` × the median interval;
  it starts at the last frame before the gap (seconds since the first frame) and lasts the whole gap.
- ``mean_*_fps`` is (messages − 1) / (last − first): the rate actually achieved. The mean of the instant
  values would over-weight short intervals (10 ms and 40 ms average to 62.5 FPS, not 40).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pandas.api.types import is_float_dtype, is_numeric_dtype, is_string_dtype

from src.analytics.loading import COLUMNS, NEEDED, OPTIONAL, AnalysisInputError
from src.models import AnalysisMetrics

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


@dataclass(eq=False)
class RateSeries:
    """One message stream: message times (s since the run's origin) and rates; instant[i] belongs to t[i + 1]."""

    t: np.ndarray
    instant: np.ndarray
    rolling: np.ndarray

    @property
    def instant_t(self) -> np.ndarray:
        """Return the time of each instant value: the later message of its interval."""
        return self.t[1:]

    @classmethod
    def empty(cls) -> RateSeries:
        """Return a stream without messages."""
        return cls(np.empty(0), np.empty(0), np.empty(0))


@dataclass(eq=False)
class MetricSeries:
    """The per-message and per-track arrays behind the metrics, on one time axis: seconds since ``t0_ns``."""

    t0_ns: int
    frames: RateSeries
    detections: RateSeries
    latency_ms: np.ndarray  # per detection message, aligned with detections.t; NaN when no receive time
    detections_per_message: np.ndarray  # aligned with detections.t
    tracking_t: np.ndarray  # per tracking message
    tracks_per_message: np.ndarray  # distinct track ids, aligned with tracking_t
    track_first_s: np.ndarray  # per track id: first and last stamp seen
    track_last_s: np.ndarray
    drop_start_s: np.ndarray  # per frame drop: the last frame before the gap, and the gap's length
    drop_duration_s: np.ndarray

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "frames.t",
        "frames.instant",
        "frames.rolling",
        "detections.t",
        "detections.instant",
        "detections.rolling",
        "latency_ms",
        "detections_per_message",
        "tracking_t",
        "tracks_per_message",
        "track_first_s",
        "track_last_s",
        "drop_start_s",
        "drop_duration_s",
    )

    @property
    def track_lifetime_s(self) -> np.ndarray:
        """Return each track's lifetime: last stamp − first stamp."""
        return self.track_last_s - self.track_first_s

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return every array by its dotted name (for the on-disk cache)."""
        return {name: _get_dotted(self, name) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, t0_ns: int, arrays: dict[str, np.ndarray]) -> MetricSeries:
        """Rebuild from to_arrays' output; raise KeyError when an array is missing."""
        streams = {
            kind: RateSeries(arrays[f"{kind}.t"], arrays[f"{kind}.instant"], arrays[f"{kind}.rolling"])
            for kind in ("frames", "detections")
        }
        flat = {name: arrays[name] for name in cls.ARRAYS if "." not in name}
        return cls(t0_ns=int(t0_ns), **streams, **flat)


@dataclass(eq=False)
class RunAnalysisData:
    """The result of analysing one run: the model's metrics, the arrays to plot, counts and warnings.

    Chart modules take this and read ``series`` (numpy arrays on one time axis) and ``metrics``.
    """

    metrics: AnalysisMetrics
    series: MetricSeries
    counts: dict[str, Any]
    rolling_window_s: float = 1.0
    drop_factor: float = 2.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Return the scalar metrics, counts, class counts and warnings as plain JSON values."""
        return {
            **self.metrics.to_summary(),
            "frame_drop_count": len(self.metrics.frame_drops or []),
            "class_counts": dict(self.metrics.class_counts or {}),
            "counts": dict(self.counts),
            "parameters": {"rolling_window_s": self.rolling_window_s, "drop_factor": self.drop_factor},
            "warnings": list(self.warnings),
        }


@dataclass(eq=False)
class _Messages:
    """Rows grouped into messages by stamp: sorted message stamps plus the sorted rows they came from."""

    ns: np.ndarray  # one per message, sorted
    starts: np.ndarray  # first row of each message in the sorted rows
    row_ns: np.ndarray  # the rows' stamps, sorted
    order: np.ndarray | None  # how the rows were sorted (None: they already were)
    keep: np.ndarray | None  # which input rows had a stamp (None: all)

    def rows(self, values: np.ndarray) -> np.ndarray:
        """Return a per-row input array filtered and sorted like the rows."""
        if self.keep is not None:
            values = values[self.keep]
        return values if self.order is None else values[self.order]


def compute_metrics(
    frames: pd.DataFrame,
    detections: pd.DataFrame,
    tracking: pd.DataFrame,
    *,
    rolling_window_s: float = 1.0,
    drop_factor: float = 2.0,
) -> RunAnalysisData:
    """Compute a run's metrics and plot series from its frames, detections and tracking tables."""
    if not (math.isfinite(rolling_window_s) and rolling_window_s > 0):
        raise ValueError(f"rolling_window_s must be a positive number, got {rolling_window_s!r}")
    if not (math.isfinite(drop_factor) and drop_factor > 0):
        raise ValueError(f"drop_factor must be a positive number, got {drop_factor!r}")
    frames = _canonical(frames, "frames")
    detections = _canonical(detections, "detections")
    tracking = _canonical(tracking, "tracking")
    warnings: list[str] = []

    frame_ns, topic, topic_count = _frame_stamps(frames, warnings)
    det = _group(detections["stamp_ns"])
    trk = _group(tracking["stamp_ns"])
    firsts = [stamps[0] for stamps in (frame_ns, det.ns, trk.ns) if stamps.size]
    # One origin for every series so the charts line up: the first frame, else the first message of any kind.
    t0 = int(frame_ns[0]) if frame_ns.size else int(min(firsts)) if firsts else 0
    window_ns = max(1, round(rolling_window_s * NS_PER_S))

    frame_rates = _rates(frame_ns, t0, window_ns)
    det_rates = _rates(det.ns, t0, window_ns)
    has_class = _present(detections["class_id"])
    is_detection = det.rows(has_class)
    per_message = _per_message_sum(is_detection, det.starts)
    latency_ms = _latency_ms(det, detections["recv_ns"])
    tracks_per_message, first_ns, last_ns = _tracks(trk, tracking["track_id"])
    drop_start_s, drop_duration_s = _drops(frame_ns, t0, drop_factor)

    series = MetricSeries(
        t0_ns=t0,
        frames=frame_rates,
        detections=det_rates,
        latency_ms=latency_ms,
        detections_per_message=per_message,
        tracking_t=_seconds(trk.ns, t0),
        tracks_per_message=tracks_per_message,
        track_first_s=_seconds(first_ns, t0),
        track_last_s=_seconds(last_ns, t0),
        drop_start_s=drop_start_s,
        drop_duration_s=drop_duration_s,
    )
    class_counts = _class_counts(detections["class_id"], has_class if det.keep is None else has_class & det.keep)
    metrics = metrics_from_series(series, class_counts)
    counts = {
        "frames": len(frames),
        "frame_topic": topic,
        "frame_topic_frames": topic_count,
        "frame_messages": int(frame_ns.size),
        "duration_s": float((frame_ns[-1] - frame_ns[0]) / NS_PER_S) if frame_ns.size else None,
        "detections": int(per_message.sum()),
        "detection_messages": int(det.ns.size),
        "tracking_rows": int(trk.row_ns.size),
        "tracking_messages": int(trk.ns.size),
        "tracks": int(first_ns.size),
        "frame_drops": int(drop_start_s.size),
        "frame_drop_time_s": float(drop_duration_s.sum()),
        "negative_latencies": int((latency_ms < 0).sum()),
    }
    return RunAnalysisData(metrics, series, counts, float(rolling_window_s), float(drop_factor), warnings)


def metrics_from_series(series: MetricSeries, class_counts: dict[str, int]) -> AnalysisMetrics:
    """Derive the AnalysisMetrics model from the series (also how the cache rebuilds it)."""
    latency = series.latency_ms[np.isfinite(series.latency_ms)]
    percentiles = np.percentile(latency, [50, 95, 99]) if latency.size else [None, None, None]
    lifetimes = series.track_lifetime_s
    return AnalysisMetrics(
        frame_fps_instant=series.frames.instant.tolist(),
        frame_fps_rolling=series.frames.rolling.tolist(),
        detection_fps_instant=series.detections.instant.tolist(),
        detection_fps_rolling=series.detections.rolling.tolist(),
        detection_latency_ms=series.latency_ms.tolist(),
        mean_detection_latency_ms=float(latency.mean()) if latency.size else None,
        detections_over_time=series.detections_per_message.astype(np.int64).tolist(),
        tracks_over_time=series.tracks_per_message.astype(np.int64).tolist(),
        total_tracks=int(lifetimes.size),
        avg_track_lifetime=float(lifetimes.mean()) if lifetimes.size else None,
        latency_p50_ms=_float(percentiles[0]),
        latency_p95_ms=_float(percentiles[1]),
        latency_p99_ms=_float(percentiles[2]),
        mean_frame_fps=_mean_rate(series.frames.t),
        mean_detection_fps=_mean_rate(series.detections.t),
        frame_drops=[
            {"start_s": float(start), "duration_s": float(duration)}
            for start, duration in zip(series.drop_start_s.tolist(), series.drop_duration_s.tolist(), strict=True)
        ],
        class_counts=dict(class_counts),
    )


# -- steps ------------------------------------------------------------------------------------------


def _canonical(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Accept the CSV's column names or the analysis names; raise AnalysisInputError naming a missing column."""
    mapping = COLUMNS[kind]
    renames = {
        column: name
        for name, column in mapping.items()
        if column != name and column in table.columns and name not in table.columns
    }
    if renames:
        table = table.rename(columns=renames)
    missing = [name for name in NEEDED[kind] if name not in table.columns and (kind, name) not in OPTIONAL]
    if missing and len(table.columns):
        raise AnalysisInputError(f"{kind} table has no column {', '.join(map(repr, missing))}")
    if missing:  # a table without columns at all: nothing was recorded
        table = pd.DataFrame({name: pd.Series([], dtype="int64") for name in missing})
    return table


def _ns(column: pd.Series) -> tuple[np.ndarray, np.ndarray | None]:
    """Return a nanosecond column as int64 plus a validity mask (None when every value is there)."""
    if column.dtype == np.int64:
        return column.to_numpy(), None
    numeric = column if is_numeric_dtype(column.dtype) else pd.to_numeric(column, errors="coerce")
    valid = numeric.notna().to_numpy()
    if is_float_dtype(numeric.dtype):
        values = np.rint(np.where(valid, numeric.to_numpy(dtype=np.float64, na_value=np.nan), 0.0)).astype(np.int64)
    else:
        values = numeric.to_numpy(dtype=np.int64, na_value=0)
    return values, None if valid.all() else valid


def _present(column: pd.Series) -> np.ndarray:
    """Return which values are there: not null and, for text, not empty (CSV readers differ on "")."""
    present = column.notna().to_numpy()
    textual = column.dtype == object or is_string_dtype(column.dtype)
    if isinstance(column.dtype, pd.CategoricalDtype):
        textual = "" in column.cat.categories
    if textual:
        present = present & (column != "").to_numpy(dtype=bool, na_value=False)
    return present


def _frame_stamps(frames: pd.DataFrame, warnings: list[str]) -> tuple[np.ndarray, str | None, int]:
    """Return the sorted distinct stamps of the frame stream analysed, its topic and its row count."""
    topic: str | None = None
    if "topic" in frames.columns and len(frames):
        per_topic = frames["topic"].value_counts()
        if len(per_topic):
            topic = str(per_topic.index[0])
        if len(per_topic) > 1:
            # Several cameras interleaved would double the rate and hide each camera's drops.
            warnings.append(
                f"frames.csv holds {len(per_topic)} image topics; frame metrics use the busiest, {topic} "
                f"({int(per_topic.iloc[0])} of {len(frames)} frames)"
            )
            frames = frames[frames["topic"] == per_topic.index[0]]
    ns, valid = _ns(frames["stamp_ns"])
    if valid is not None:
        ns = ns[valid]
    ns = np.sort(ns)
    if ns.size > 1:
        ns = ns[np.concatenate(([True], ns[1:] != ns[:-1]))]
    return ns, topic, len(frames)


def _group(stamps: pd.Series) -> _Messages:
    """Group rows into messages by stamp, sorting the rows only when they are not already in order."""
    row_ns, keep = _ns(stamps)
    if keep is not None:
        row_ns = row_ns[keep]
    order = None
    if row_ns.size > 1 and (row_ns[1:] < row_ns[:-1]).any():
        order = np.argsort(row_ns, kind="stable")
        row_ns = row_ns[order]
    if row_ns.size == 0:
        return _Messages(row_ns, np.empty(0, dtype=np.int64), row_ns, order, keep)
    starts = np.flatnonzero(np.concatenate(([True], row_ns[1:] != row_ns[:-1])))
    return _Messages(row_ns[starts], starts, row_ns, order, keep)


def _rates(ns: np.ndarray, t0: int, window_ns: int) -> RateSeries:
    """Return instant and trailing-window rates of sorted distinct stamps."""
    if ns.size == 0:
        return RateSeries.empty()
    instant = NS_PER_S / np.diff(ns).astype(np.float64)
    # Messages in (t − window, t]: everything after the last stamp ≤ t − window, up to and including this one.
    left = np.searchsorted(ns, ns - window_ns, side="right")
    rolling = (np.arange(1, ns.size + 1) - left) / (window_ns / NS_PER_S)
    return RateSeries(_seconds(ns, t0), instant, rolling)


def _per_message_sum(flags: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Count the true flags of each message."""
    if starts.size == 0:
        return np.empty(0, dtype=np.int64)
    return np.add.reduceat(flags.astype(np.int64), starts)


def _latency_ms(messages: _Messages, recv: pd.Series) -> np.ndarray:
    """Return each message's earliest receive time minus its stamp, in ms (NaN without a receive time)."""
    if messages.starts.size == 0:
        return np.empty(0)
    recv_ns, valid = _ns(recv)
    if valid is not None:
        recv_ns = np.where(valid, recv_ns, _INT64_MAX)
    earliest = np.minimum.reduceat(messages.rows(recv_ns), messages.starts)
    known = earliest != _INT64_MAX
    # Subtract in int64 before scaling: float64 cannot hold epoch nanoseconds exactly.
    delta = np.where(known, earliest, messages.ns) - messages.ns
    return np.where(known, delta / NS_PER_MS, np.nan)


def _tracks(messages: _Messages, track_ids: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return distinct track ids per message, and each track's first and last stamp."""
    n_messages = messages.ns.size
    if n_messages == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    codes, uniques = pd.factorize(messages.rows(track_ids.to_numpy()))
    present = (codes >= 0) & messages.rows(_present(track_ids))  # an empty track id marks a message without tracks
    message_of_row = np.cumsum(np.concatenate(([True], messages.row_ns[1:] != messages.row_ns[:-1]))) - 1
    codes, rows_ns, message_of_row = codes[present], messages.row_ns[present], message_of_row[present]
    n_tracks = len(uniques)
    # A track listed twice in one message is one track: drop repeated (message, id) pairs. Hashing beats
    # sorting here, and np.unique is far slower than either on a million int64 keys.
    pair = message_of_row.astype(np.int64) * max(n_tracks, 1) + codes
    distinct = ~pd.Series(pair).duplicated().to_numpy()
    per_message = np.bincount(message_of_row[distinct], minlength=n_messages)
    first = np.full(n_tracks, _INT64_MAX, dtype=np.int64)
    last = np.full(n_tracks, _INT64_MIN, dtype=np.int64)
    np.minimum.at(first, codes, rows_ns)
    np.maximum.at(last, codes, rows_ns)
    return per_message, first, last


def _drops(ns: np.ndarray, t0: int, drop_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Return start (s since t0) and duration (s) of every frame interval longer than drop_factor × median."""
    if ns.size < 3:  # two frames give one interval: nothing to compare it with
        return np.empty(0), np.empty(0)
    gaps = np.diff(ns)
    long = gaps > drop_factor * np.median(gaps)
    return _seconds(ns[:-1][long], t0), gaps[long] / NS_PER_S


def _class_counts(classes: pd.Series, keep: np.ndarray) -> dict[str, int]:
    """Return detections per class (of the rows kept), most frequent first, with class ids as strings."""
    if not keep.all():
        classes = classes[keep]
    counts = classes.value_counts(dropna=True)
    return {_class_key(key): int(count) for key, count in counts.items() if count}  # categories list unused ones


def _class_key(value: object) -> str:
    """Return a class id as text; ids read as floats (a column with gaps) lose their '.0'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _seconds(ns: np.ndarray, t0: int) -> np.ndarray:
    """Return stamps as float seconds since t0 (subtracting in int64 first keeps nanoseconds exact)."""
    return (ns - t0) / NS_PER_S


def _mean_rate(t: np.ndarray) -> float | None:
    """Return (messages − 1) / span, or None with fewer than two messages."""
    if t.size < 2 or t[-1] <= t[0]:
        return None
    return float((t.size - 1) / (t[-1] - t[0]))


def _float(value: Any) -> float | None:
    """Return value as a float, None staying None."""
    return None if value is None else float(value)


def _get_dotted(obj: Any, name: str) -> Any:
    """Return obj.a.b for 'a.b'."""
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj
