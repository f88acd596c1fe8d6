"""Moments worth looking at in one analysed run, ranked: a pure, vectorised function of the analysis and the tracks.

Kinds (thresholds in MomentSettings, from BAGBOARD_MOMENT_* settings):

- ``latency``: detection latencies at or above ``latency_ms`` (0: the run's p99) and above the median, the
  highest peaks at least ``separation_s`` apart.
- ``drop``: frame gaps beyond the analysis' drop factor × the median frame interval (2× by default), longest first.
- ``detection_jump``: the number of detections changing by ``detection_jump`` or more between consecutive
  detection messages.
- ``track_burst``: ``burst_tracks`` or more tracks born (or lost) within ``burst_window_s``; tracks already there
  at the first tracking message, or still there at the last, are not births or deaths.
- ``fragmentation``: a track ends and another of the same class starts within ``fragment_gap_s`` and
  ``fragment_distance_px`` of where it ended: probably one object that lost its id.

Each moment's ``score`` is its value over its threshold (≥ 1), which ranks moments of different kinds together;
each kind keeps its ``per_kind`` best.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from src.analytics.loading import BLOCK_SIZE, AnalysisInputError
from src.analytics.metrics import NS_PER_S, RunAnalysisData
from src.models import Moment

MAX_PAIRS = 5_000_000  # fragmentation candidates examined at once; beyond it the closest deaths are kept


@dataclass(frozen=True)
class MomentSettings:
    """Thresholds of the moments (see the module docstring)."""

    per_kind: int = 10
    latency_ms: float = 0.0
    separation_s: float = 1.0
    detection_jump: int = 5
    burst_window_s: float = 1.0
    burst_tracks: int = 4
    fragment_gap_s: float = 1.0
    fragment_distance_px: float = 40.0

    def to_dict(self) -> dict[str, Any]:
        """Return the thresholds as plain values (cached moments record them)."""
        return {key: float(value) for key, value in asdict(self).items()}


@dataclass(frozen=True)
class TrackPoints:
    """tracking.csv rows with a track id: stamp, track and class (as codes into their names) and box centre.

    Codes, not a Python string per row: a run has thousands of tracks but a million rows, and turning every row's
    id into a str object cost more than finding the moments.
    """

    stamp_ns: np.ndarray
    track: np.ndarray  # int code per row into track_names
    track_names: np.ndarray  # object (str), one per distinct track id
    klass: np.ndarray  # int code per row into class_names, -1 where the class is missing
    class_names: np.ndarray  # object (str)
    cx: np.ndarray
    cy: np.ndarray

    @classmethod
    def empty(cls) -> TrackPoints:
        """Return no points."""
        codes, names = np.empty(0, dtype=np.int64), np.empty(0, dtype=object)
        return cls(np.empty(0, dtype=np.int64), codes, names, codes, names, np.empty(0), np.empty(0))


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Return (code per row, -1 where null; the distinct strings) of a string column, encoded in Arrow."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    return codes, encoded.dictionary.to_numpy(zero_copy_only=False).astype(object)


def load_track_points(directory: Path) -> TrackPoints:
    """Read the columns fragmentation needs from tracking.csv (missing file or columns: no points)."""
    path = Path(directory) / "tracking.csv"
    wanted = ("stamp_ns", "track_id", "class_id", "cx", "cy")
    try:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline()
    except OSError:
        return TrackPoints.empty()
    if not all(f'"{name}"' in header or name in header.split(",") for name in wanted):
        return TrackPoints.empty()
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(wanted),
                column_types={
                    "stamp_ns": pa.int64(),
                    "track_id": pa.string(),
                    "class_id": pa.string(),
                    "cx": pa.float64(),
                    "cy": pa.float64(),
                },
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise AnalysisInputError(f"{path}: {str(exc).splitlines()[0]}") from exc
    table = table.filter(table["track_id"].is_valid())
    track, track_names = _codes(table["track_id"])
    klass, class_names = _codes(table["class_id"])
    return TrackPoints(
        stamp_ns=table["stamp_ns"].to_numpy(zero_copy_only=False),
        track=track,
        track_names=track_names,
        klass=klass,
        class_names=class_names,
        cx=table["cx"].to_numpy(zero_copy_only=False),
        cy=table["cy"].to_numpy(zero_copy_only=False),
    )


def find_moments(
    data: RunAnalysisData, tracks: TrackPoints | None = None, settings: MomentSettings | None = None
) -> list[Moment]:
    """Return the run's moments, best first."""
    settings = settings or MomentSettings()
    found = [
        *_latencies(data, settings),
        *_drops(data, settings),
        *_detection_jumps(data, settings),
        *_bursts(data, settings),
        *_fragmentation(data, tracks if tracks is not None else TrackPoints.empty(), settings),
    ]
    return sorted(found, key=lambda m: (-m.score, m.t_s))


# -- kinds ------------------------------------------------------------------------------------------


def _latencies(data: RunAnalysisData, settings: MomentSettings) -> list[Moment]:
    """Return the highest latency peaks at or above the threshold."""
    latency, t = data.series.latency_ms, data.series.detections.t
    finite = np.isfinite(latency)
    if not finite.any():
        return []
    p99, median = np.percentile(latency[finite], [99, 50])
    threshold = float(settings.latency_ms or p99)
    source = f"{threshold:.0f} ms" if settings.latency_ms else f"the run's p99 {threshold:.0f} ms"
    # Above the typical latency too: a run whose latencies are all alike has no latency moment.
    candidates = np.flatnonzero(finite & (latency >= threshold) & (latency > median))
    picked = _spaced_peaks(t[candidates], latency[candidates], settings.separation_s, settings.per_kind)
    return [
        Moment(
            "latency",
            float(t[candidates[i]]),
            f"detection latency {latency[candidates[i]]:.0f} ms (≥ {source}; median {median:.0f} ms)",
            float(latency[candidates[i]] / max(threshold, 1e-9)),
            extra={"latency_ms": float(latency[candidates[i]])},
        )
        for i in picked
    ]


def _drops(data: RunAnalysisData, settings: MomentSettings) -> list[Moment]:
    """Return the longest frame drops."""
    start, duration = data.series.drop_start_s, data.series.drop_duration_s
    frames_t = data.series.frames.t
    if not start.size or frames_t.size < 3:
        return []
    median = float(np.median(np.diff(frames_t)))
    threshold = data.drop_factor * median
    longest = np.argsort(-duration, kind="stable")[: settings.per_kind]
    return [
        Moment(
            "drop",
            float(start[i]),
            f"no frame for {duration[i]:.2f} s ({duration[i] / median:.0f}× the {median * 1e3:.0f} ms median interval)",
            float(duration[i] / max(threshold, 1e-12)),
            extra={"duration_s": float(duration[i])},
        )
        for i in longest
    ]


def _detection_jumps(data: RunAnalysisData, settings: MomentSettings) -> list[Moment]:
    """Return the biggest changes in detections per message between consecutive messages."""
    counts, t = data.series.detections_per_message.astype(np.int64), data.series.detections.t
    if counts.size < 2:
        return []
    change = np.diff(counts)
    candidates = np.flatnonzero(np.abs(change) >= settings.detection_jump)
    picked = _spaced_peaks(t[candidates + 1], np.abs(change[candidates]), settings.separation_s, settings.per_kind)
    moments = []
    for i in picked:
        at = candidates[i]
        before, after = int(counts[at]), int(counts[at + 1])
        moments.append(
            Moment(
                "detection_jump",
                float(t[at + 1]),
                f"detections {before} → {after} ({after - before:+d}) from one message to the next",
                abs(after - before) / settings.detection_jump,
                extra={"before": before, "after": after},
            )
        )
    return moments


def _bursts(data: RunAnalysisData, settings: MomentSettings) -> list[Moment]:
    """Return windows in which many tracks were born, or many were lost."""
    s = data.series
    if s.tracking_t.size < 2 or not s.track_first_s.size:
        return []
    first_message, last_message = s.tracking_t[0], s.tracking_t[-1]
    moments = []
    for times, verb in ((s.track_first_s[s.track_first_s > first_message], "born"), (s.track_last_s, "lost")):
        if verb == "lost":
            times = times[times < last_message]
        times = np.sort(times)
        if times.size < settings.burst_tracks:
            continue
        # Events in [t, t + window) for each event t: one searchsorted over the sorted times.
        within = np.searchsorted(times, times + settings.burst_window_s, side="left") - np.arange(times.size)
        candidates = np.flatnonzero(within >= settings.burst_tracks)
        picked = _spaced_peaks(times[candidates], within[candidates], settings.burst_window_s, settings.per_kind)
        for i in picked:
            count = int(within[candidates[i]])
            moments.append(
                Moment(
                    "track_burst",
                    float(times[candidates[i]]),
                    f"{count} tracks {verb} within {settings.burst_window_s:g} s",
                    count / settings.burst_tracks,
                    extra={"tracks": count, "event": verb},
                )
            )
    return sorted(moments, key=lambda m: -m.score)[: settings.per_kind]


def _fragmentation(data: RunAnalysisData, tracks: TrackPoints, settings: MomentSettings) -> list[Moment]:
    """Return tracks that end where another of the same class starts soon after: likely one object's lost id."""
    if tracks.stamp_ns.size < 2:
        return []
    codes, ids = tracks.track, tracks.track_names
    order = np.lexsort((tracks.stamp_ns, codes))
    sorted_codes = codes[order]
    edges = np.flatnonzero(np.diff(sorted_codes)) + 1
    first = order[np.concatenate(([0], edges))]
    last = order[np.concatenate((edges - 1, [order.size - 1]))]
    t0 = data.series.t0_ns
    start_s = (tracks.stamp_ns[first] - t0) / NS_PER_S
    end_s = (tracks.stamp_ns[last] - t0) / NS_PER_S
    start_class = tracks.klass[first]  # -1 (no class) pairs only with another track without a class
    end_class = tracks.klass[last]
    by_start = np.argsort(start_s, kind="stable")
    starts = start_s[by_start]
    lo = np.searchsorted(starts, end_s, side="right")
    hi = np.searchsorted(starts, end_s + settings.fragment_gap_s, side="right")
    per_death = hi - lo
    if per_death.sum() > MAX_PAIRS:  # pathological runs: keep the deaths with the fewest candidates
        keep = np.argsort(per_death, kind="stable")
        keep = keep[np.cumsum(per_death[keep]) <= MAX_PAIRS]
        mask = np.zeros(per_death.size, dtype=bool)
        mask[keep] = True
        per_death = np.where(mask, per_death, 0)
    dead = np.repeat(np.arange(per_death.size), per_death)
    # Candidate j of death i is by_start[lo[i] + k] for k < per_death[i]: a ramp restarting at every death.
    ramp = np.arange(dead.size) - np.repeat(np.cumsum(per_death) - per_death, per_death)
    born = by_start[np.repeat(lo, per_death) + ramp]
    same = (born != dead) & (start_class[born] == end_class[dead])
    dx = tracks.cx[first[born]] - tracks.cx[last[dead]]
    dy = tracks.cy[first[born]] - tracks.cy[last[dead]]
    distance = np.hypot(dx, dy)
    near = same & np.isfinite(distance) & (distance <= settings.fragment_distance_px)
    dead, born, distance = dead[near], born[near], distance[near]
    if not dead.size:
        return []
    # Each old and each new track in one pair at most: closest pairs first.
    ranked = np.argsort(distance, kind="stable")
    used_dead: set[int] = set()
    used_born: set[int] = set()
    moments = []
    for k in ranked.tolist():
        a, b = int(dead[k]), int(born[k])
        if a in used_dead or b in used_born:
            continue
        used_dead.add(a)
        used_born.add(b)
        gap = float(start_s[b] - end_s[a])
        name = str(tracks.class_names[end_class[a]]) if end_class[a] >= 0 else ""
        name = name or "unclassified"
        moments.append(
            Moment(
                "fragmentation",
                float(start_s[b]),
                f"track {ids[a]} ({name}) ends and track {ids[b]} starts {gap:.2f} s later, {distance[k]:.0f} px away",
                2.0 - float(distance[k]) / max(settings.fragment_distance_px, 1e-9),
                extra={"ended": str(ids[a]), "started": str(ids[b]), "gap_s": gap, "distance_px": float(distance[k])},
            )
        )
        if len(moments) >= settings.per_kind:
            break
    return moments


def _spaced_peaks(t: np.ndarray, value: np.ndarray, separation: float, limit: int) -> list[int]:
    """Return indices of the highest values (the earliest of equals), each at least separation from those already
    picked, best first."""
    if not t.size or limit <= 0:
        return []
    order = np.lexsort((t, -value.astype(np.float64)))
    picked: list[int] = []
    times: list[float] = []
    for index in order.tolist():
        at = float(t[index])
        if all(abs(at - other) >= separation for other in times):
            picked.append(index)
            times.append(at)
            if len(picked) >= limit:
                break
    return picked
