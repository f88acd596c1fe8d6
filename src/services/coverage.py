"""Coverage arithmetic on the inventory's per-run table: pure, vectorised, no I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd

from src.models import FILTER_LEVELS, HIERARCHY_LEVELS, CoverageBreakdown, CoverageStatistics, TemporalData

DEFAULT_THRESHOLD_PCT = 50.0


def gap_percentages(bags: np.ndarray, samples: np.ndarray, expected: int) -> np.ndarray:
    """Return max(0, 1 - samples / (bags × expected)) × 100 per row; 0 where there are no bags."""
    bags = np.asarray(bags, dtype="float64")
    samples = np.asarray(samples, dtype="float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.clip(1.0 - samples / (bags * expected), 0.0, 1.0) * 100.0
    return np.where(bags > 0, gap, 0.0)


def _time_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort parsed timestamps first (by time), then unparseable names lexically."""
    return frame.assign(_nat=frame["ts_parsed"].isna()).sort_values(["_nat", "ts_parsed", "timestamp"], kind="stable")


# Time buckets tried in order when a selection has more timestamps than a chart can usefully draw.
BUCKETS: tuple[tuple[str, str, str], ...] = (
    ("hour", "h", "%Y-%m-%d %H:00"),
    ("day", "D", "%Y-%m-%d"),
    ("week", "W-MON", "%Y-%m-%d"),
    ("month", "M", "%Y-%m"),
)


def temporal_data(runs: pd.DataFrame, expected: int, max_points: int | None = None) -> TemporalData:
    """Aggregate runs per timestamp name; above max_points timestamps, per hour, day, week or month."""
    if runs.empty:
        return TemporalData([], [], [], [], expected, [])
    per_ts = (
        runs.groupby("timestamp", observed=True, sort=False)
        .agg(raw_bags=("raw_bags", "sum"), ml_samples=("ml_samples", "sum"), ts_parsed=("ts_parsed", "first"))
        .reset_index()
    )
    if max_points is not None and len(per_ts) > max_points:
        return _bucketed(per_ts, expected, max_points)
    per_ts = _time_order(per_ts)
    bags = per_ts["raw_bags"].to_numpy()
    samples = per_ts["ml_samples"].to_numpy()
    parsed = per_ts["ts_parsed"].astype(object).where(per_ts["ts_parsed"].notna(), None)
    return TemporalData(
        timestamps=per_ts["timestamp"].astype(str).tolist(),
        raw_bags=bags.astype(int).tolist(),
        ml_samples=samples.astype(int).tolist(),
        gap_percentages=np.round(gap_percentages(bags, samples, expected), 2).tolist(),
        expected_samples_per_bag=expected,
        parsed_times=[None if t is None else t.to_pydatetime() for t in parsed],
    )


def _bucketed(per_ts: pd.DataFrame, expected: int, max_points: int) -> TemporalData:
    """Sum timestamps into the finest time bucket that yields at most max_points points."""
    placed = per_ts.dropna(subset=["ts_parsed"])
    name, label, starts = _bucket_starts(placed["ts_parsed"], max_points)
    grouped = placed.groupby(starts.to_numpy()).agg(raw_bags=("raw_bags", "sum"), ml_samples=("ml_samples", "sum"))
    bags, samples = grouped["raw_bags"].to_numpy(), grouped["ml_samples"].to_numpy()
    return TemporalData(
        timestamps=[t.strftime(label) for t in grouped.index],
        raw_bags=bags.astype(int).tolist(),
        ml_samples=samples.astype(int).tolist(),
        gap_percentages=np.round(gap_percentages(bags, samples, expected), 2).tolist(),
        expected_samples_per_bag=expected,
        parsed_times=[t.to_pydatetime() for t in grouped.index],
        bucket=name,
        unplaced=len(per_ts) - len(placed),
    )


def _bucket_starts(times: pd.Series, max_points: int, coarsest_first_from: str = "hour") -> tuple[str, str, pd.Series]:
    """Return the finest bucket (name, label format, start of each time's bucket) within max_points."""
    names = [name for name, _, _ in BUCKETS]
    for name, freq, label in BUCKETS[names.index(coarsest_first_from) :]:
        starts = times.dt.to_period(freq).dt.start_time
        if starts.nunique() <= max_points:
            return name, label, starts
    return name, label, starts  # months: a coarser bucket would hide more than it shows


def coverage_statistics(
    runs: pd.DataFrame, expected: int, threshold_pct: float = DEFAULT_THRESHOLD_PCT, limit: int | None = None
) -> CoverageStatistics:
    """Summarise runs: totals, coverage, average gap and the under-labelled runs (worst first, at most limit)."""
    if runs.empty:
        return CoverageStatistics(0, 0, 0, 0.0, 0.0, 0, threshold_pct=threshold_pct)
    bags = runs["raw_bags"].to_numpy(dtype="int64")
    samples = runs["ml_samples"].to_numpy(dtype="int64")
    gaps = gap_percentages(bags, samples, expected)
    has_bags = bags > 0
    wanted = bags * expected
    # Coverage caps each run at its target, so over-labelled runs cannot hide under-labelled ones.
    covered = np.minimum(samples, wanted)[has_bags].sum()
    overall = float(covered / wanted[has_bags].sum() * 100) if has_bags.any() else 0.0
    under = np.flatnonzero(has_bags & (gaps > threshold_pct))
    # Worst first, ties by timestamp name; only the rows shown are turned into Python objects.
    order = pd.DataFrame({"gap": -gaps[under], "ts": runs["timestamp"].to_numpy()[under]}).sort_values(
        ["gap", "ts"], kind="stable"
    )
    shown = under[order.index.to_numpy()[:limit] if limit is not None else order.index.to_numpy()]
    rows = runs.iloc[shown]
    orphans = runs.iloc[np.flatnonzero(~has_bags & (samples > 0))[:limit]]
    return CoverageStatistics(
        total_timestamps=int(runs["timestamp"].nunique()),
        total_raw_bags=int(bags.sum()),
        total_ml_samples=int(samples.sum()),
        overall_coverage_pct=round(overall, 2),
        average_gap_pct=round(float(gaps[has_bags].mean()), 2) if has_bags.any() else 0.0,
        under_labeled_count=len(under),
        under_labeled_timestamps=list(
            zip(
                rows["timestamp"].astype(str).tolist(),
                np.round(gaps[shown], 2).tolist(),
                bags[shown].tolist(),
                samples[shown].tolist(),
                strict=True,
            )
        ),
        under_labeled_coordinates=_paths(rows),
        samples_without_bags=list(zip(_paths(orphans), orphans["ml_samples"].astype(int).tolist(), strict=True)),
        threshold_pct=threshold_pct,
    )


def coverage_breakdown(
    runs: pd.DataFrame,
    filters: dict[str, str],
    expected: int,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    max_columns: int | None = None,
) -> CoverageBreakdown | None:
    """Break coverage down by the level below the selection (None when all five levels are chosen)."""
    depth = len(filters)
    if depth >= len(FILTER_LEVELS):
        return None
    level = FILTER_LEVELS[depth]
    if runs.empty:
        return CoverageBreakdown(level, [], [], [], [], [], [])
    gaps = gap_percentages(runs["raw_bags"].to_numpy(), runs["ml_samples"].to_numpy(), expected)
    frame = pd.DataFrame(
        {
            "child": runs[level].astype(str).to_numpy(),
            "raw_bags": runs["raw_bags"].to_numpy(),
            "ml_samples": runs["ml_samples"].to_numpy(),
            "under": (runs["raw_bags"].to_numpy() > 0) & (gaps > threshold_pct),
            "day": runs["ts_parsed"].dt.floor("D").to_numpy(),
        }
    )
    period = "day"
    if max_columns is not None and frame["day"].nunique() > max_columns:
        # Too many days for a readable heatmap: weeks, then months.
        placed = frame["day"].dropna()
        period, _label, starts = _bucket_starts(placed, max_columns, coarsest_first_from="week")
        frame.loc[placed.index, "day"] = starts.to_numpy()
    per_child = frame.groupby("child", sort=True).agg(
        runs=("raw_bags", "size"),
        raw_bags=("raw_bags", "sum"),
        ml_samples=("ml_samples", "sum"),
        under=("under", "sum"),
    )
    per_day = (
        frame.dropna(subset=["day"])
        .groupby(["child", "day"])
        .agg(raw_bags=("raw_bags", "sum"), ml_samples=("ml_samples", "sum"))
    )
    per_day["gap"] = gap_percentages(per_day["raw_bags"].to_numpy(), per_day["ml_samples"].to_numpy(), expected)
    per_day.loc[per_day["raw_bags"] == 0, "gap"] = np.nan
    grid = per_day["gap"].unstack("day").reindex(per_child.index)
    return CoverageBreakdown(
        level=level,
        children=per_child.index.tolist(),
        runs=per_child["runs"].astype(int).tolist(),
        raw_bags=per_child["raw_bags"].astype(int).tolist(),
        ml_samples=per_child["ml_samples"].astype(int).tolist(),
        gap_percentages=np.round(
            gap_percentages(per_child["raw_bags"].to_numpy(), per_child["ml_samples"].to_numpy(), expected), 2
        ).tolist(),
        under_labeled_counts=per_child["under"].astype(int).tolist(),
        days=[pd.Timestamp(d).date().isoformat() for d in grid.columns],
        period=period,
        day_gaps=[[None if pd.isna(v) else round(float(v), 2) for v in row] for row in grid.to_numpy()],
    )


def _paths(rows: pd.DataFrame) -> list[str]:
    """Join the hierarchy columns of rows into coordinate path strings."""
    if rows.empty:
        return []
    joined = rows[HIERARCHY_LEVELS[0]].astype(str)
    for level in HIERARCHY_LEVELS[1:]:
        joined = joined + "/" + rows[level].astype(str)
    return joined.tolist()
