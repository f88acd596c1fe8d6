"""Pure roll-ups of per-run KPIs: per group, per period, and outliers by a robust z-score on the MAD.

How a group's figure is made from its runs' (so a hand computation can check it):
- mean FPS: the mean of the runs' mean FPS;
- latency p50 / p95 / p99: the median of the runs' p50 / p95 / p99 (the typical run's tail, not a pooled one);
- frame drops and tracks per minute: all drops (tracks) over all minutes of the runs with a duration;
- mean track lifetime: the runs' mean lifetimes weighted by their number of tracks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from src.models.fleet import KPI_NAMES, OUTLIER_METRICS, Outlier

# 0.6745 is the 75th percentile of the standard normal: it scales the MAD to a standard deviation (Iglewicz and
# Hoaglin); when half the values are equal the MAD is 0 and the mean absolute deviation (× 1.2533) stands in.
MAD_SCALE = 0.6745
MEAN_AD_SCALE = 1.253314
DEFAULT_THRESHOLD = 3.5
MIN_GROUP_RUNS = 3


def _prepared(runs: pd.DataFrame) -> pd.DataFrame:
    """Return the helper columns the sums need (weights are 0 where a run lacks the figure)."""
    minutes = runs["duration_s"].where(runs["duration_s"] > 0) / 60.0
    has_minutes = minutes.notna()
    tracks = runs["tracks"].fillna(0).astype(float)
    lifetime = runs["mean_track_lifetime_s"]
    life_weight = tracks.where(lifetime.notna() & (tracks > 0), 0.0)
    return pd.DataFrame(
        {
            "mean_fps": runs["mean_fps"],
            "latency_p50_ms": runs["latency_p50_ms"],
            "latency_p95_ms": runs["latency_p95_ms"],
            "latency_p99_ms": runs["latency_p99_ms"],
            "minutes": minutes.fillna(0.0),
            "drops": runs["frame_drops"].fillna(0).astype(float).where(has_minutes, 0.0),
            "tracks": tracks.where(has_minutes, 0.0),
            "life_sum": (lifetime.fillna(0.0) * life_weight),
            "life_weight": life_weight,
        },
        index=runs.index,
    )


def _finish(agg: pd.DataFrame, counts: pd.Series) -> pd.DataFrame:
    """Turn the aggregated sums into the KPI columns."""
    minutes = agg["minutes"].where(agg["minutes"] > 0)
    out = pd.DataFrame(index=agg.index)
    out["runs"] = counts.astype(int)
    out["mean_fps"] = agg["mean_fps"]
    for name in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"):
        out[name] = agg[name]
    out["drops_per_min"] = agg["drops"] / minutes
    out["tracks_per_min"] = agg["tracks"] / minutes
    out["mean_track_lifetime_s"] = agg["life_sum"] / agg["life_weight"].where(agg["life_weight"] > 0)
    return out[["runs", *KPI_NAMES]]


AGGREGATES = {
    "mean_fps": "mean",
    "latency_p50_ms": "median",
    "latency_p95_ms": "median",
    "latency_p99_ms": "median",
    "minutes": "sum",
    "drops": "sum",
    "tracks": "sum",
    "life_sum": "sum",
    "life_weight": "sum",
}


def rollup(runs: pd.DataFrame, keys: pd.Series | np.ndarray) -> pd.DataFrame:
    """Return one row of KPIs per key (the runs' group), indexed and sorted by key."""
    if runs.empty:
        return pd.DataFrame(columns=["runs", *KPI_NAMES])
    prepared = _prepared(runs)
    grouped = prepared.groupby(np.asarray(keys), sort=True, observed=True)
    return _finish(grouped.agg(AGGREGATES), grouped.size())


def overall(runs: pd.DataFrame) -> dict[str, float | None]:
    """Return the roll-up over every run, as plain numbers (None where undefined)."""
    if runs.empty:
        return {"runs": 0, **{name: None for name in KPI_NAMES}}
    row = rollup(runs, np.zeros(len(runs), dtype=np.int8)).iloc[0]
    return {name: (None if pd.isna(value) else float(value)) for name, value in row.items()}


def period_starts(started_at: pd.Series, period: str) -> pd.Series:
    """Return each run's day (or week, from Monday) as a datetime; NaT where the run has no time."""
    days = started_at.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    if period == "week":
        # 1970-01-01 was a Thursday: day number + 3 is 0 modulo 7 on Mondays.
        valid = ~np.isnat(days)
        numbers = days.astype("int64")
        numbers[valid] -= (numbers[valid] + 3) % 7
        days = numbers.astype("datetime64[D]")
        days[~valid] = np.datetime64("NaT")
    elif period != "day":
        raise ValueError(f"period must be day or week, not {period!r}")
    return pd.Series(days.astype("datetime64[ns]"), index=started_at.index)


def robust_z(values: pd.Series, groups: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Return each value's robust z-score within its group, and its group's median (NaN where undefined)."""
    frame = pd.DataFrame({"v": values.astype(float), "g": groups})
    grouped = frame.groupby("g", sort=False, observed=True)["v"]
    median = grouped.transform("median")
    deviation = (frame["v"] - median).abs()
    frame["d"] = deviation
    by_dev = frame.groupby("g", sort=False, observed=True)["d"]
    mad = by_dev.transform("median")
    mean_ad = by_dev.transform("mean")
    count = grouped.transform("count")
    z = pd.Series(np.nan, index=values.index)
    use_mad = mad > 0
    z[use_mad] = MAD_SCALE * (frame["v"] - median)[use_mad] / mad[use_mad]
    use_mean = (~use_mad) & (mean_ad > 0)
    z[use_mean] = (frame["v"] - median)[use_mean] / (MEAN_AD_SCALE * mean_ad[use_mean])
    z[count < MIN_GROUP_RUNS] = np.nan
    return z, median


def find_outliers(
    runs: pd.DataFrame, groups: pd.Series, threshold: float, metrics: tuple[str, ...] = OUTLIER_METRICS
) -> list[Outlier]:
    """Return the runs whose |robust z| exceeds threshold for some metric, the farthest first."""
    found: list[Outlier] = []
    for metric in metrics:
        z, median = robust_z(runs[metric], groups)
        hits = np.flatnonzero(np.abs(z.to_numpy()) > threshold)
        for index in hits:
            found.append(
                Outlier(
                    coordinate=str(runs["coordinate"].iat[index]),
                    group=str(groups.iat[index]),
                    metric=metric,
                    value=float(runs[metric].iat[index]),
                    median=float(median.iat[index]),
                    z=float(z.iat[index]),
                )
            )
    found.sort(key=lambda outlier: -abs(outlier.z))
    return found
