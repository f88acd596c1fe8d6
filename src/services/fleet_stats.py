"""Pure roll-ups of per-run KPIs: per group, per period, and outliers by a robust z-score on the MAD.

How a group's figure is made from its runs' (so a hand computation can check it):
- mean FPS: the mean of the runs' mean FPS;
- latency p50 / p95 / p99: the median of the runs' p50 / p95 / p99 (the typical run's tail, not a pooled one);
- frame drops and tracks per minute: all drops (tracks) over all minutes of the runs with a duration;
- mean track lifetime: the runs' mean lifetimes weighted by their number of tracks.

Everything is numpy on group codes (one factorize, then bincounts and one sort per median): pandas' groupby costs
milliseconds per call at any size, which the fleet view's callback, called on every filter change, cannot afford.
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
MEDIAN_KPIS = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")


def codes_of(keys: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """Return each row's group code (-1 for a missing key) and the sorted group names."""
    # A Series goes in as is: factorising pandas' Arrow-backed strings is ten times faster than an object array.
    codes, uniques = pd.factorize(keys if isinstance(keys, pd.Series) else np.asarray(keys), sort=True)
    return np.asarray(codes), pd.Index(uniques)


def group_sum(values: np.ndarray, codes: np.ndarray, groups: int) -> np.ndarray:
    """Return the sum of the finite values per group."""
    keep = (codes >= 0) & np.isfinite(values)
    return np.bincount(codes[keep], weights=values[keep], minlength=groups)


def group_count(values: np.ndarray, codes: np.ndarray, groups: int) -> np.ndarray:
    """Return how many finite values each group has."""
    keep = (codes >= 0) & np.isfinite(values)
    return np.bincount(codes[keep], minlength=groups)


def group_mean(values: np.ndarray, codes: np.ndarray, groups: int) -> np.ndarray:
    """Return the mean of the finite values per group (NaN for a group without any)."""
    counts = group_count(values, codes, groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, group_sum(values, codes, groups) / np.maximum(counts, 1), np.nan)


def group_median(values: np.ndarray, codes: np.ndarray, groups: int) -> np.ndarray:
    """Return the median of the finite values per group (NaN for a group without any)."""
    keep = (codes >= 0) & np.isfinite(values)
    v, c = values[keep], codes[keep]
    order = np.lexsort((v, c))
    v, c = v[order], c[order]
    counts = np.bincount(c, minlength=groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(groups, np.nan)
    has = counts > 0
    low, high = starts + (counts - 1) // 2, starts + counts // 2
    out[has] = (v[low[has]] + v[high[has]]) / 2
    return out


ROLLUP_INPUTS = ("duration_s", "frame_drops", "tracks", "mean_track_lifetime_s", "mean_fps", *MEDIAN_KPIS)


def columns_of(runs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Return the columns a roll-up reads, as float64 arrays (NaN for missing): read once per selection."""
    return {name: runs[name].to_numpy(dtype=float, na_value=np.nan) for name in ROLLUP_INPUTS}


def rollup(runs: pd.DataFrame, keys: pd.Series | np.ndarray) -> pd.DataFrame:
    """Return one row of KPIs per key (the runs' group), indexed and sorted by key."""
    if runs.empty:
        return pd.DataFrame(columns=["runs", *KPI_NAMES])
    return rollup_codes(runs, *codes_of(keys))


def rollup_codes(runs: pd.DataFrame | dict[str, np.ndarray], codes: np.ndarray, names: pd.Index) -> pd.DataFrame:
    """Return one row of KPIs per group of already factorised codes (runs: a frame or its columns_of)."""
    columns = runs if isinstance(runs, dict) else columns_of(runs)
    return pd.DataFrame(rollup_arrays(columns, codes, len(names)), index=names)[["runs", *KPI_NAMES]]


def rollup_arrays(columns: dict[str, np.ndarray], codes: np.ndarray, groups: int) -> dict[str, np.ndarray]:
    """Return each KPI as an array over the groups (the work of a roll-up, without a DataFrame around it)."""
    duration = columns["duration_s"]
    minutes = np.where(duration > 0, duration / 60.0, np.nan)
    timed = np.isfinite(minutes)
    drops = np.where(timed, np.nan_to_num(columns["frame_drops"]), np.nan)
    tracks_all = np.nan_to_num(columns["tracks"])
    tracks = np.where(timed, tracks_all, np.nan)
    lifetime = columns["mean_track_lifetime_s"]
    weight = np.where(np.isfinite(lifetime) & (tracks_all > 0), tracks_all, np.nan)
    total_minutes = group_sum(minutes, codes, groups)
    total_weight = group_sum(weight, codes, groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_minute = np.where(total_minutes > 0, 1.0 / total_minutes, np.nan)
        out = {
            "runs": np.bincount(codes[codes >= 0], minlength=groups),
            "mean_fps": group_mean(columns["mean_fps"], codes, groups),
            **{name: group_median(columns[name], codes, groups) for name in MEDIAN_KPIS},
            "drops_per_min": group_sum(drops, codes, groups) * per_minute,
            "tracks_per_min": group_sum(tracks, codes, groups) * per_minute,
            "mean_track_lifetime_s": np.where(
                total_weight > 0, group_sum(lifetime * weight, codes, groups) / total_weight, np.nan
            ),
        }
    return out


def overall(runs: pd.DataFrame | dict[str, np.ndarray], count: int | None = None) -> dict[str, float | None]:
    """Return the roll-up over every run, as plain numbers (None where undefined)."""
    count = len(runs) if count is None else count
    if not count:
        return {"runs": 0, **{name: None for name in KPI_NAMES}}
    columns = runs if isinstance(runs, dict) else columns_of(runs)
    arrays = rollup_arrays(columns, np.zeros(count, dtype=np.intp), 1)
    return {name: (None if np.isnan(values[0]) else float(values[0])) for name, values in arrays.items()}


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
    codes, names = codes_of(groups)
    z, median = robust_z_codes(values.to_numpy(dtype=float, na_value=np.nan), codes, len(names))
    return pd.Series(z, index=values.index), pd.Series(median, index=values.index)


def robust_z_codes(v: np.ndarray, codes: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Return robust z-scores and group medians of values already split into `count` groups by codes."""
    median = group_median(v, codes, count)
    row_median = np.where(codes >= 0, median[codes], np.nan)
    deviation = np.abs(v - row_median)
    mad = group_median(deviation, codes, count)[codes]
    mean_ad = group_mean(deviation, codes, count)[codes]
    runs = group_count(v, codes, count)[codes]
    z = np.full(len(v), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        use_mad = mad > 0
        z[use_mad] = MAD_SCALE * (v - row_median)[use_mad] / mad[use_mad]
        use_mean = ~use_mad & (mean_ad > 0)
        z[use_mean] = (v - row_median)[use_mean] / (MEAN_AD_SCALE * mean_ad[use_mean])
    z[(runs < MIN_GROUP_RUNS) | (codes < 0)] = np.nan
    return z, row_median


ZScores = dict[str, tuple[np.ndarray, np.ndarray]]


def z_scores(runs: pd.DataFrame, groups: pd.Series, metrics: tuple[str, ...] = OUTLIER_METRICS) -> ZScores:
    """Return (robust z, group median) per metric for every run: what outliers at any threshold need."""
    codes, names = codes_of(groups)  # once for every metric
    return {
        metric: robust_z_codes(runs[metric].to_numpy(dtype=float, na_value=np.nan), codes, len(names))
        for metric in metrics
    }


def outliers_from(runs: pd.DataFrame, groups: pd.Series, scores: ZScores, threshold: float) -> list[Outlier]:
    """Return the runs whose |robust z| exceeds threshold for some metric, the farthest first."""
    found: list[Outlier] = []
    coordinates = runs["coordinate"].to_numpy()
    group_names = np.asarray(groups)
    for metric, (z_values, medians) in scores.items():
        hits = np.flatnonzero(np.abs(np.nan_to_num(z_values)) > threshold)
        if not hits.size:
            continue
        values = runs[metric].to_numpy(dtype=float, na_value=np.nan)
        found.extend(
            Outlier(
                coordinate=str(coordinates[index]),
                group=str(group_names[index]),
                metric=metric,
                value=float(values[index]),
                median=float(medians[index]),
                z=float(z_values[index]),
            )
            for index in hits
        )
    found.sort(key=lambda outlier: -abs(outlier.z))
    return found


def find_outliers(
    runs: pd.DataFrame, groups: pd.Series, threshold: float, metrics: tuple[str, ...] = OUTLIER_METRICS
) -> list[Outlier]:
    """Return the runs whose |robust z| exceeds threshold for some metric, the farthest first."""
    return outliers_from(runs, groups, z_scores(runs, groups, metrics), threshold)
