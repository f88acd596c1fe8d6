"""Coverage arithmetic on the runs under a filter: pure numpy on category codes, no I/O, no pandas per query.

A query touches one contiguous slice of the inventory's per-run arrays (runs are sorted by coordinate), so every
answer below is a few bincounts over at most one entry per run; strings are looked up only for what is shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from src.models import FILTER_LEVELS, HIERARCHY_LEVELS, CoverageBreakdown, CoverageStatistics, TemporalData
from src.services.timestamps import DATETIME_DTYPE, parse_unique_timestamps, timestamp_order

DEFAULT_THRESHOLD_PCT = 50.0
TS = len(HIERARCHY_LEVELS) - 1  # position of the timestamp level

# Time buckets tried in order when a selection has more timestamps than a chart can usefully draw.
BUCKETS: tuple[str, ...] = ("hour", "day", "week", "month")


class TimestampCategories:
    """The distinct timestamp names of an inventory in rule order, with what queries derive from them.

    Built once per inventory and shared by every selection, so the derived arrays are computed once.
    """

    def __init__(self, names: np.ndarray, times: np.ndarray | None = None) -> None:
        self.names = np.asarray(names, dtype=object)
        # datetime64[us] per name, NaT where the name is not a date.
        self.times = parse_unique_timestamps(self.names) if times is None else times
        self._keys: dict[str, np.ndarray] = {}

    @classmethod
    def from_names(cls, names: np.ndarray) -> TimestampCategories:
        """Order distinct names by the timestamp rule (parsed time, then unparseable names)."""
        uniques = np.unique(np.asarray(names, dtype=object)) if len(names) else np.zeros(0, dtype=object)
        times = parse_unique_timestamps(uniques)
        order = timestamp_order(uniques, times)
        return cls(uniques[order], times[order])

    @cached_property
    def lexical_rank(self) -> np.ndarray:
        """Return each name's position in plain string order (the table breaks gap ties by name)."""
        rank = np.empty(len(self.names), dtype=np.int64)
        rank[np.argsort(self.names, kind="stable")] = np.arange(len(self.names))
        return rank

    def bucket_keys(self, bucket: str) -> np.ndarray:
        """Return each name's bucket key (see bucket_keys; meaningless where the time is NaT), memoised."""
        keys = self._keys.get(bucket)
        if keys is None:
            keys = self._keys[bucket] = bucket_keys(self.times, bucket)
        return keys

    @cached_property
    def placed(self) -> np.ndarray:
        """Return whether each name parses as a time."""
        return ~np.isnat(self.times)


@dataclass(frozen=True)
class RunSelection:
    """The runs under a filter as parallel arrays, one entry per run; hierarchy values stay category codes."""

    codes: tuple[np.ndarray, ...]  # per hierarchy level: each run's code into values[level]
    values: tuple[np.ndarray, ...]  # per level: category strings; levels lexical, timestamps in rule order
    timestamps: TimestampCategories  # the timestamp categories (values[TS]) with their parsed times
    raw_bags: np.ndarray
    ml_samples: np.ndarray
    # Sums that do not depend on the expected samples per bag, kept per selection: an index hands out the same
    # selection for the same filters, so a new target re-derives only the gaps.
    memo: dict[tuple, tuple] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.raw_bags)

    def gaps(self, expected: int) -> np.ndarray:
        """Return each run's gap % for expected (the last target's gaps are kept: one view asks several times)."""
        last = self.memo.get(("gaps",))
        if last is None or last[0] != expected:
            last = self.memo[("gaps",)] = (expected, gap_percentages(self.raw_bags, self.ml_samples, expected))
        return last[1]

    def remember(self, key: tuple, compute: Callable[[], tuple]) -> tuple:
        """Return compute() for key, computed once per selection."""
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = compute()
        return found

    @classmethod
    def empty(cls) -> RunSelection:
        """Return a selection of no runs."""
        nothing = np.zeros(0, dtype=np.int64)
        timestamps = TimestampCategories(np.zeros(0, dtype=object))
        return cls(
            codes=(nothing,) * len(HIERARCHY_LEVELS),
            values=(np.zeros(0, dtype=object),) * TS + (timestamps.names,),
            timestamps=timestamps,
            raw_bags=nothing,
            ml_samples=nothing,
        )

    @classmethod
    def from_frame(cls, runs: pd.DataFrame) -> RunSelection:
        """Build a selection from a runs frame (hierarchy columns, raw_bags, ml_samples), e.g. in tests."""
        codes, values = [], []
        timestamps = TimestampCategories.from_names(runs[HIERARCHY_LEVELS[TS]].astype(str).to_numpy(dtype=object))
        for level in HIERARCHY_LEVELS:
            names = runs[level].astype(str).to_numpy(dtype=object)
            if level == HIERARCHY_LEVELS[TS]:
                uniques = timestamps.names
            else:
                uniques = np.unique(names) if len(names) else np.zeros(0, dtype=object)
            lookup = {name: code for code, name in enumerate(uniques)}
            codes.append(np.fromiter((lookup[n] for n in names), dtype=np.int64, count=len(names)))
            values.append(np.asarray(uniques, dtype=object))
        return cls(
            codes=tuple(codes),
            values=tuple(values),
            timestamps=timestamps,
            raw_bags=runs["raw_bags"].to_numpy(dtype=np.int64),
            ml_samples=runs["ml_samples"].to_numpy(dtype=np.int64),
        )

    def paths(self, rows: np.ndarray) -> list[str]:
        """Return the coordinate path strings of the given run positions."""
        if not len(rows):
            return []
        # Many runs share their five leading levels: join those once per distinct parent, then add timestamps.
        sizes = [max(len(values), 1) for values in self.values[:TS]]
        parent = np.ravel_multi_index(tuple(codes[rows] for codes in self.codes[:TS]), sizes)
        distinct, which = np.unique(parent, return_inverse=True)
        parts = np.unravel_index(distinct, sizes)
        names = [values[codes].tolist() for values, codes in zip(self.values[:TS], parts, strict=True)]
        prefixes = np.array(["/".join(levels) + "/" for levels in zip(*names, strict=True)], dtype=object)
        return (prefixes[which] + self.values[TS][self.codes[TS][rows]]).tolist()


Runs = RunSelection | pd.DataFrame


def as_selection(runs: Runs) -> RunSelection:
    """Accept a selection or a runs frame."""
    return runs if isinstance(runs, RunSelection) else RunSelection.from_frame(runs)


def gap_percentages(bags: np.ndarray, samples: np.ndarray, expected: int) -> np.ndarray:
    """Return max(0, 1 - samples / (bags × expected)) × 100 per row; 0 where there are no bags."""
    bags = np.asarray(bags, dtype="float64")
    samples = np.asarray(samples, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.clip(1.0 - samples / (bags * expected), 0.0, 1.0) * 100.0
    return np.where(bags > 0, gap, 0.0)


# -- per timestamp (the time series) ----------------------------------------------------------------


def temporal_data(runs: Runs, expected: int, max_points: int | None = None) -> TemporalData:
    """Aggregate runs per timestamp name; above max_points timestamps, per hour, day, week or month."""
    sel = as_selection(runs)
    if not len(sel):
        return TemporalData([], [], [], [], expected, [])
    present, bags, samples = sel.remember(("per timestamp",), lambda: _per_timestamp(sel))
    if max_points is not None and len(present) > max_points:
        name, starts, bucket_bags, bucket_samples, unplaced = sel.remember(
            ("buckets", max_points), lambda: _buckets(sel.timestamps, present, bags, samples, max_points)
        )
        return TemporalData(
            timestamps=bucket_labels(starts, name),
            raw_bags=bucket_bags.tolist(),
            ml_samples=bucket_samples.tolist(),
            gap_percentages=np.round(gap_percentages(bucket_bags, bucket_samples, expected), 2).tolist(),
            expected_samples_per_bag=expected,
            parsed_times=starts.astype(DATETIME_DTYPE).tolist(),
            bucket=name,
            unplaced=unplaced,
        )
    return TemporalData(
        timestamps=sel.values[TS][present].tolist(),
        raw_bags=bags.tolist(),
        ml_samples=samples.tolist(),
        gap_percentages=np.round(gap_percentages(bags, samples, expected), 2).tolist(),
        expected_samples_per_bag=expected,
        parsed_times=sel.timestamps.times[present].tolist(),  # datetime64[us] -> datetime, NaT -> None
    )


def _per_timestamp(sel: RunSelection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the timestamp codes present (in rule order) with their bag and sample sums."""
    ts = sel.codes[TS]
    present = np.flatnonzero(np.bincount(ts))  # ascending codes = timestamp-rule order
    return present, _sum_by(ts, sel.raw_bags)[present], _sum_by(ts, sel.ml_samples)[present]


def _buckets(
    timestamps: TimestampCategories,
    present: np.ndarray,
    bags: np.ndarray,
    samples: np.ndarray,
    max_points: int,
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, int]:
    """Sum timestamps into the finest bucket of at most max_points points (bucket, starts, bags, samples, unplaced)."""
    placed = timestamps.placed[present]
    name, keys = choose_bucket(timestamps, present[placed], max_points)
    # Parsed times come first and in time order, so equal buckets are neighbours.
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
    bucket_bags = np.add.reduceat(bags[placed], first) if len(first) else bags[:0]
    bucket_samples = np.add.reduceat(samples[placed], first) if len(first) else samples[:0]
    return name, bucket_start(keys[first], name), bucket_bags, bucket_samples, int((~placed).sum())


def bucket_keys(times: np.ndarray, bucket: str) -> np.ndarray:
    """Return each time's bucket as an integer: hours, days, Monday-of-week days or months since 1970."""
    if bucket == "hour":
        return times.astype("datetime64[h]").astype(np.int64)
    if bucket == "month":
        return times.astype("datetime64[M]").astype(np.int64)
    days = times.astype("datetime64[D]").astype(np.int64)
    if bucket == "day":
        return days
    if bucket == "week":
        return days - (days + 3) % 7  # 1970-01-01 was a Thursday
    raise ValueError(f"unknown time bucket {bucket!r}")


def bucket_start(keys: np.ndarray, bucket: str) -> np.ndarray:
    """Return the start of each bucket key as a datetime64."""
    unit = {"hour": "h", "day": "D", "week": "D", "month": "M"}[bucket]
    return keys.astype(f"datetime64[{unit}]")


def choose_bucket(
    timestamps: TimestampCategories, codes: np.ndarray, max_points: int, coarsest_first_from: str = "hour"
) -> tuple[str, np.ndarray]:
    """Return the finest bucket (name, the key of each code's time) with at most max_points distinct keys."""
    for name in BUCKETS[BUCKETS.index(coarsest_first_from) :]:
        keys = timestamps.bucket_keys(name)[codes]
        if _distinct(keys) <= max_points:
            return name, keys
    return name, keys  # months: a coarser bucket would hide more than it shows


def bucket_labels(starts: np.ndarray, bucket: str) -> list[str]:
    """Label bucket starts: '2024-05-01 10:00' (hour), '2024-05-01' (day, week), '2024-05' (month)."""
    if bucket == "hour":
        return [f"{label[:10]} {label[11:13]}:00" for label in np.datetime_as_string(starts, unit="h").tolist()]
    return np.datetime_as_string(starts, unit="M" if bucket == "month" else "D").tolist()


# -- totals and the under-labelled runs ---------------------------------------------------------------


def coverage_statistics(
    runs: Runs, expected: int, threshold_pct: float = DEFAULT_THRESHOLD_PCT, limit: int | None = None
) -> CoverageStatistics:
    """Summarise runs: totals, coverage, average gap and the under-labelled runs (worst first, at most limit)."""
    sel = as_selection(runs)
    if not len(sel):
        return CoverageStatistics(0, 0, 0, 0.0, 0.0, 0, threshold_pct=threshold_pct)
    bags, samples = sel.raw_bags, sel.ml_samples
    gaps = sel.gaps(expected)
    has_bags = bags > 0
    wanted = bags * expected
    # Coverage caps each run at its target, so over-labelled runs cannot hide under-labelled ones.
    total_wanted = int(wanted.sum())
    overall = float(np.minimum(samples, wanted).sum() / total_wanted * 100) if total_wanted else 0.0
    under = np.flatnonzero(has_bags & (gaps > threshold_pct))
    shown = _worst_first(sel, under, gaps, limit)
    orphans = np.flatnonzero(~has_bags & (samples > 0))
    orphans = orphans[np.argsort(sel.codes[TS][orphans], kind="stable")][:limit]  # in time order
    return CoverageStatistics(
        total_timestamps=int(np.count_nonzero(np.bincount(sel.codes[TS]))),
        total_raw_bags=int(bags.sum()),
        total_ml_samples=int(samples.sum()),
        overall_coverage_pct=round(overall, 2),
        average_gap_pct=round(float(gaps[has_bags].mean()), 2) if has_bags.any() else 0.0,
        under_labeled_count=len(under),
        under_labeled_timestamps=list(
            zip(
                sel.values[TS][sel.codes[TS][shown]].tolist(),
                np.round(gaps[shown], 2).tolist(),
                bags[shown].tolist(),
                samples[shown].tolist(),
                strict=True,
            )
        ),
        under_labeled_coordinates=sel.paths(shown),
        samples_without_bags=list(zip(sel.paths(orphans), samples[orphans].tolist(), strict=True)),
        threshold_pct=threshold_pct,
    )


def _worst_first(sel: RunSelection, rows: np.ndarray, gaps: np.ndarray, limit: int | None) -> np.ndarray:
    """Order rows by gap (largest first), then timestamp name, then coordinate; keep at most limit."""
    rank = sel.timestamps.lexical_rank
    if limit is not None and len(rows) > limit:
        rows = _worst_candidates(rows, gaps[rows], rank[sel.codes[TS][rows]], limit)
    # lexsort is stable and rows are in coordinate order, which settles the last ties.
    order = np.lexsort((rank[sel.codes[TS][rows]], -gaps[rows]))
    return rows[order][:limit]


def _worst_candidates(rows: np.ndarray, gaps: np.ndarray, names: np.ndarray, limit: int) -> np.ndarray:
    """Return the limit rows that sort first, in coordinate order, without sorting all of them (O(n))."""
    cutoff = np.partition(gaps, len(rows) - limit)[len(rows) - limit]  # the limit-th largest gap
    keep = gaps > cutoff
    tied = np.flatnonzero(gaps == cutoff)
    room = limit - int(keep.sum())
    if len(tied) > room:
        # Among rows tied at the cutoff the first names win, then the first coordinates.
        key = names[tied] * len(tied) + np.arange(len(tied))
        tied = tied[np.sort(np.argpartition(key, room - 1)[:room])] if room else tied[:0]
    keep[tied] = True
    return rows[keep]


# -- per child of the next level (the breakdown) ------------------------------------------------------


def coverage_breakdown(
    runs: Runs,
    filters: Mapping[str, str],
    expected: int,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    max_columns: int | None = None,
) -> CoverageBreakdown | None:
    """Break coverage down by the level below the selection (None when all five levels are chosen)."""
    depth = len(filters)
    if depth >= len(FILTER_LEVELS):
        return None
    level = FILTER_LEVELS[depth]
    sel = as_selection(runs)
    if not len(sel):
        return CoverageBreakdown(level, [], [], [], [], [], [])
    bags = sel.raw_bags
    children, child, runs_per_child, child_bags, child_samples = sel.remember(
        ("children", depth), lambda: _per_child(sel, depth)
    )
    n_children = len(children)
    under = (bags > 0) & (sel.gaps(expected) > threshold_pct)
    period, columns, cell_bags, cell_samples = sel.remember(
        ("heatmap", depth, max_columns), lambda: _heatmap(sel, child, n_children, max_columns)
    )
    grid = np.round(gap_percentages(cell_bags, cell_samples, expected), 2).astype(object)
    grid[cell_bags == 0] = None  # no bags in that cell: nothing to label, not a 0 % gap
    starts = bucket_start(columns, period).astype("datetime64[D]")
    return CoverageBreakdown(
        level=level,
        children=sel.values[depth][children].tolist(),
        runs=runs_per_child.tolist(),
        raw_bags=child_bags.tolist(),
        ml_samples=child_samples.tolist(),
        gap_percentages=np.round(gap_percentages(child_bags, child_samples, expected), 2).tolist(),
        under_labeled_counts=_sum_by(child, under, n_children).tolist(),
        days=np.datetime_as_string(starts, unit="D").tolist(),
        period=period,
        day_gaps=grid.tolist(),
    )


def _per_child(sel: RunSelection, depth: int) -> tuple[np.ndarray, ...]:
    """Return the children at depth (string order), each run's child number, and runs, bags and samples per child."""
    children, child = _groups(sel.codes[depth])  # category order is string order
    size = len(children)
    runs = np.bincount(child, minlength=size)
    return children, child, runs, _sum_by(child, sel.raw_bags, size), _sum_by(child, sel.ml_samples, size)


def _heatmap(
    sel: RunSelection, child: np.ndarray, n_children: int, max_columns: int | None
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """Return (period, column keys, bags and samples per child × column) for the breakdown's heatmap."""
    ts = sel.codes[TS]
    placed = sel.timestamps.placed[ts]
    period = "day"
    columns, column = _groups(sel.timestamps.bucket_keys("day")[ts[placed]])
    if max_columns is not None and len(columns) > max_columns:
        # Too many days for a readable heatmap: weeks, then months.
        period, keys = choose_bucket(sel.timestamps, ts[placed], max_columns, "week")
        columns, column = _groups(keys)
    size = n_children * len(columns)
    cell = child[placed] * len(columns) + column
    cell_bags = _sum_by(cell, sel.raw_bags[placed], size).reshape(n_children, len(columns))
    cell_samples = _sum_by(cell, sel.ml_samples[placed], size).reshape(n_children, len(columns))
    return period, columns, cell_bags, cell_samples


# -- helpers ------------------------------------------------------------------------------------


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (distinct keys in ascending order, each key's group number); a bincount when keys are dense."""
    if not len(keys):
        return keys, keys
    low, high = int(keys.min()), int(keys.max())
    if high - low <= 4 * len(keys) + 4096:
        offsets = keys - low
        present = np.flatnonzero(np.bincount(offsets))
        slot = np.zeros(high - low + 1, dtype=np.int64)
        slot[present] = np.arange(len(present))
        return present + low, slot[offsets]
    return np.unique(keys, return_inverse=True)


def _sum_by(groups: np.ndarray, values: np.ndarray, size: int = 0) -> np.ndarray:
    """Return the integer sum of values per group number (0..size-1 at least)."""
    # bincount sums in float64, exact for counts far beyond any inventory (2**53).
    return np.bincount(groups, weights=values, minlength=size).astype(np.int64)


def _distinct(values: np.ndarray) -> int:
    """Return the number of distinct values (one pass when they are sorted, as parsed timestamps are)."""
    if len(values) < 2:
        return len(values)
    if (values[1:] >= values[:-1]).all():
        return int((values[1:] != values[:-1]).sum()) + 1
    return len(_groups(values)[0])
