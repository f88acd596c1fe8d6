"""Roll-ups and outliers computed by hand on tests/fleet/helpers.TWO_FIELDS."""

from __future__ import annotations

import pandas as pd
import pytest

from src.services import fleet_stats
from tests.fleet.helpers import TWO_FIELDS, table


def test_rollup_per_child_matches_the_hand_computation():
    runs = table(TWO_FIELDS)
    by_child = fleet_stats.rollup(runs, runs["fieldid"])
    f1, f2 = by_child.loc["f1"], by_child.loc["f2"]
    assert (f1["runs"], f2["runs"]) == (2, 3)
    assert f1["mean_fps"] == pytest.approx(15.0)  # mean of 10 and 20
    assert f1["latency_p95_ms"] == pytest.approx(85.0)  # median of the runs' p95: 80, 90
    assert f2["latency_p95_ms"] == pytest.approx(75.0)  # median of 70, 75, 400: the slow run does not drag it
    assert f1["drops_per_min"] == pytest.approx(1.0)  # 3 drops over 1 + 2 minutes
    assert f1["tracks_per_min"] == pytest.approx(6.0)  # 18 tracks over 3 minutes
    assert f1["mean_track_lifetime_s"] == pytest.approx((2.0 * 6 + 4.0 * 12) / 18)  # weighted by tracks
    assert f2["mean_fps"] == pytest.approx(12.0) and f2["tracks_per_min"] == pytest.approx(5.0)


def test_overall_and_a_run_without_duration():
    runs = table([*TWO_FIELDS, ("c/r/f3/t/l/x", {"mean_fps": 40.0, "duration_s": None, "frame_drops": 9, "tracks": 9})])
    overall = fleet_stats.overall(runs)
    assert overall["runs"] == 6
    assert overall["mean_fps"] == pytest.approx((10 + 20 + 12 + 11 + 13 + 40) / 6)
    # The run without a duration counts for FPS but not in the per-minute rates: 9 drops over 9 minutes.
    assert overall["drops_per_min"] == pytest.approx(9 / 9)


def test_periods_per_day_and_per_week_start_on_monday():
    runs = table(TWO_FIELDS)
    days = fleet_stats.period_starts(runs["started_at"], "day")
    weeks = fleet_stats.period_starts(runs["started_at"], "week")
    assert [d.strftime("%Y-%m-%d") for d in days] == [
        "2024-05-06",
        "2024-05-07",
        "2024-05-13",
        "2024-05-14",
        "2024-05-15",
    ]
    assert sorted({w.strftime("%Y-%m-%d") for w in weeks}) == ["2024-05-06", "2024-05-13"]
    weekly = fleet_stats.rollup(runs, weeks)
    assert weekly["runs"].tolist() == [2, 3]
    with pytest.raises(ValueError, match="day or week"):
        fleet_stats.period_starts(runs["started_at"], "fortnight")


def test_a_run_without_time_gets_no_period():
    runs = table([("c/r/f/t/l/odd", {"mean_fps": 1.0, "started_at": None})])
    assert fleet_stats.period_starts(runs["started_at"], "week").isna().all()


def test_outlier_by_robust_z_on_the_mad():
    runs = table(TWO_FIELDS)
    outliers = fleet_stats.find_outliers(runs, runs["fieldid"], 3.5)
    # f2's p95: 70, 75, 400 → median 75, deviations 5, 0, 325 → MAD 5 → z = 0.6745 × 325 / 5 = 43.8.
    assert [(o.coordinate, o.metric) for o in outliers] == [("c/r/f2/t/l/2024-05-15T10-00-00", "latency_p95_ms")]
    assert outliers[0].z == pytest.approx(0.6745 * 325 / 5)
    assert outliers[0].median == pytest.approx(75.0) and outliers[0].group == "f2"
    # f1 has two runs only: too few to call one an outlier. A threshold above 43.8 finds nothing.
    assert fleet_stats.find_outliers(runs, runs["fieldid"], 50.0) == []


def test_zero_mad_falls_back_to_the_mean_absolute_deviation():
    values = pd.Series([10.0, 10.0, 10.0, 16.0])
    z, median = fleet_stats.robust_z(values, pd.Series(["g"] * 4))
    # MAD is 0 (three equal values); mean absolute deviation is 6 / 4 = 1.5 → z = 6 / (1.2533 × 1.5).
    assert z.iloc[3] == pytest.approx(6 / (1.253314 * 1.5))
    assert z.iloc[0] == 0 and median.iloc[0] == 10.0
    flat, _ = fleet_stats.robust_z(pd.Series([5.0, 5.0, 5.0]), pd.Series(["g"] * 3))
    assert flat.isna().all()  # all equal: no one is an outlier
