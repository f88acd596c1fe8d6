"""Coverage figures on a hand-built inventory, checked against hand-computed answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from cachelib import SimpleCache

from src.services.data_state import DataStateService
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.storage.local import LocalBucket

NORTH = "acme/north"
# run -> (bags, samples)
RUNS = {
    f"{NORTH}/f1/tw1/lb1/2024-05-01T10-00-00": (2, 34),  # gap 0
    f"{NORTH}/f1/tw1/lb1/2024-05-01T12-00-00": (1, 0),  # gap 100
    f"{NORTH}/f1/tw1/lb1/2024-05-03T09-00-00": (2, 17),  # gap exactly 50: not above the threshold
    f"{NORTH}/f1/tw1/lb1/final-run": (1, 5),  # gap 70.59, name is not a date
    f"{NORTH}/f2/tw1/lb1/2024-05-01T10-00-00": (1, 20),  # over-labelled: capped in coverage
    f"{NORTH}/f2/tw1/lb1/2024-05-02T08-00-00": (0, 6),  # samples without bags
    "acme/south/f9/tw1/lb1/2024-06-01T00-00-00": (3, 10),  # outside the north selection
}


@pytest.fixture
def data_state(tmp_path: Path) -> DataStateService:
    raw, ml = tmp_path / "raw", tmp_path / "ml"
    for run, (bags, samples) in RUNS.items():
        for i in range(bags):
            path = raw / run / f"bag_{i}.bag"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * 10)
        for i in range(samples):
            path = ml / run / f"img_{i:03}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"p")
            path.with_suffix(".json").write_text("{}")
    inventory = CloudInventoryService(LocalBucket(raw), LocalBucket(ml), tmp_path / "snap.parquet", SimpleCache())
    inventory.refresh_inventory()
    return DataStateService(inventory, LocalStateService(tmp_path / "data"), expected_samples_per_bag=17)


def test_partial_selection_aggregates_descendants_per_timestamp(data_state):
    temporal = data_state.get_temporal_coverage_data({"cid": "acme", "regionid": "north"})
    assert temporal.timestamps == [
        "2024-05-01T10-00-00",  # f1 and f2 summed: 3 bags, 54 samples
        "2024-05-01T12-00-00",
        "2024-05-02T08-00-00",
        "2024-05-03T09-00-00",
        "final-run",  # unparseable names come last
    ]
    assert temporal.raw_bags == [3, 1, 0, 2, 1]
    assert temporal.ml_samples == [54, 0, 6, 17, 5]
    assert temporal.gap_percentages == [0.0, 100.0, 0.0, 50.0, 70.59]
    assert temporal.parsed_times[-1] is None and temporal.parsed_times[0].hour == 10


def test_statistics_match_hand_counts(data_state):
    stats = data_state.get_coverage_statistics({"cid": "acme", "regionid": "north"})
    assert stats.total_timestamps == 5
    assert stats.total_raw_bags == 7
    assert stats.total_ml_samples == 82
    assert stats.overall_coverage_pct == 61.34  # 73 of 119 expected, each run capped at its target
    assert stats.average_gap_pct == 44.12  # (0 + 100 + 50 + 70.59 + 0) / 5 runs with bags
    assert stats.under_labeled_count == 2
    assert stats.under_labeled_timestamps == [("2024-05-01T12-00-00", 100.0, 1, 0), ("final-run", 70.59, 1, 5)]
    assert stats.under_labeled_coordinates == [
        f"{NORTH}/f1/tw1/lb1/2024-05-01T12-00-00",
        f"{NORTH}/f1/tw1/lb1/final-run",
    ]
    assert stats.samples_without_bags == [(f"{NORTH}/f2/tw1/lb1/2024-05-02T08-00-00", 6)]


def test_expected_samples_and_threshold_change_the_answer(data_state):
    stats = data_state.get_coverage_statistics({"cid": "acme", "regionid": "north"}, 10, threshold_pct=40)
    # gaps at 10 per bag: 0, 100, 15, 50, 0 -> above 40 %: the empty run and final-run
    assert [t for t, *_ in stats.under_labeled_timestamps] == ["2024-05-01T12-00-00", "final-run"]
    assert data_state.get_coverage_statistics({"cid": "acme", "regionid": "north"}, 10).under_labeled_count == 1


def test_breakdown_by_next_level_and_day(data_state):
    breakdown = data_state.get_coverage_breakdown({"cid": "acme", "regionid": "north"})
    assert breakdown.level == "fieldid"
    assert breakdown.children == ["f1", "f2"]
    assert breakdown.runs == [4, 2]
    assert breakdown.raw_bags == [6, 1]
    assert breakdown.ml_samples == [56, 26]
    assert breakdown.gap_percentages == [45.1, 0.0]
    assert breakdown.under_labeled_counts == [2, 0]
    assert breakdown.days == ["2024-05-01", "2024-05-02", "2024-05-03"]
    assert breakdown.day_gaps == [[33.33, None, 50.0], [0.0, None, None]]
    assert (
        data_state.get_coverage_breakdown(
            dict(
                zip(("cid", "regionid", "fieldid", "twid", "lbid"), ("acme", "north", "f1", "tw1", "lb1"), strict=True)
            )
        )
        is None
    )


def test_top_level_breaks_down_by_customer(data_state):
    breakdown = data_state.get_coverage_breakdown({})
    assert breakdown.level == "cid" and breakdown.children == ["acme"]
    south = data_state.get_coverage_breakdown({"cid": "acme"})
    assert south.children == ["north", "south"]
    assert south.gap_percentages[1] == round((1 - 10 / 51) * 100, 2)


def test_report_bundles_everything_and_empty_selections_are_explained(data_state):
    report = data_state.get_coverage_report({"cid": "acme", "regionid": "north"}, 17, 50)
    assert report.inventory_available and report.statistics.under_labeled_count == 2
    empty = data_state.get_coverage_report({"cid": "nobody"})
    assert empty.temporal.timestamps == [] and empty.statistics.total_raw_bags == 0


def test_filter_options_cascade_and_bad_values_are_refused(data_state):
    assert data_state.get_filter_options("cid") == ["acme"]
    assert data_state.get_filter_options("regionid", {"cid": "acme"}) == ["north", "south"]
    assert data_state.get_filter_options("fieldid", {"regionid": "north"}) == []  # no parent chosen
    full = {"cid": "acme", "regionid": "north", "fieldid": "f1", "twid": "tw1", "lbid": "lb1"}
    assert data_state.get_available_timestamps(full) == [
        "2024-05-01T10-00-00",
        "2024-05-01T12-00-00",
        "2024-05-03T09-00-00",
        "final-run",
    ]
    assert data_state.get_available_timestamps({"cid": "acme"}) == []
    with pytest.raises(ValueError, match="cid must not contain"):
        data_state.get_coverage_statistics({"cid": "../etc"})
    with pytest.raises(ValueError, match="threshold"):
        data_state.get_coverage_report({}, 17, 150)


def test_long_selections_are_bucketed_for_the_charts_and_the_table_is_limited():
    import pandas as pd

    from src.services.coverage import coverage_statistics, temporal_data

    times = pd.date_range("2024-05-01", periods=1000, freq="15min")  # about 10.4 days
    runs = pd.DataFrame(
        {
            "cid": "c",
            "regionid": "r",
            "fieldid": "f",
            "twid": "t",
            "lbid": "l",
            "timestamp": [t.strftime("%Y-%m-%dT%H-%M-%S") for t in times] + ["not-a-date"],
            "ts_parsed": [*times, pd.NaT],
            "raw_bags": 1,
            "ml_samples": [0] * 500 + [17] * 501,
        }
    )
    every = temporal_data(runs, 17)
    assert len(every.timestamps) == 1001 and every.bucket == "timestamp"
    daily = temporal_data(runs, 17, max_points=500)
    assert daily.bucket == "hour" and len(daily.timestamps) == 250 and daily.unplaced == 1
    assert sum(daily.raw_bags) == 1000  # the unparseable run is counted elsewhere, not lost
    coarse = temporal_data(runs, 17, max_points=20)
    assert coarse.bucket == "day" and coarse.timestamps[0] == "2024-05-01" and len(coarse.timestamps) == 11
    stats = coverage_statistics(runs, 17, limit=10)
    assert stats.under_labeled_count == 500 and len(stats.under_labeled_timestamps) == 10
    assert len(stats.under_labeled_coordinates) == 10


def test_the_inventory_selection_and_a_plain_runs_frame_give_the_same_answers(data_state):
    from src.services.coverage import coverage_breakdown, coverage_statistics, temporal_data

    for filters in ({}, {"cid": "acme"}, {"cid": "acme", "regionid": "north"}):
        frame = data_state.cloud.get_temporal_data(filters)  # the same runs as a frame, coded from scratch
        assert temporal_data(frame, 17) == data_state.get_temporal_coverage_data(filters)
        assert coverage_statistics(frame, 17) == data_state.get_coverage_statistics(filters)
        assert coverage_breakdown(frame, filters, 17) == data_state.get_coverage_breakdown(filters)


def test_a_new_target_on_a_remembered_selection_gives_the_fresh_answers(data_state):
    from src.services.coverage import coverage_breakdown, coverage_statistics, temporal_data

    # The index hands out one selection per filter and it memoises its sums; a changed target must still count.
    for filters in ({}, {"cid": "acme", "regionid": "north"}):
        assert data_state.cloud.select_runs(filters) is data_state.cloud.select_runs(filters)
        for expected in (17, 5, 40, 17):
            frame = data_state.cloud.get_temporal_data(filters)
            assert data_state.get_temporal_coverage_data(filters, expected) == temporal_data(frame, expected)
            assert data_state.get_coverage_statistics(filters, expected) == coverage_statistics(frame, expected)
            assert data_state.get_coverage_breakdown(filters, expected) == coverage_breakdown(frame, filters, expected)


def _tied_runs(n: int, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = [f"2024-05-{1 + i % 28:02d}T{i % 24:02d}-00-00" for i in rng.integers(0, 200, n)]
    return pd.DataFrame(
        {
            "cid": "c",
            "regionid": "r",
            "fieldid": [f"f{i}" for i in rng.integers(0, 5, n)],
            "twid": "t",
            "lbid": [f"l{i}" for i in range(n)],  # every run its own coordinate
            "timestamp": names,
            "raw_bags": rng.integers(0, 3, n),
            "ml_samples": rng.choice([0, 5, 17], n),  # few distinct gaps: many ties at any cut-off
        }
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_limited_table_is_exactly_the_head_of_the_full_worst_first_order(seed):
    from src.services.coverage import coverage_statistics

    runs = _tied_runs(400, seed)
    full = coverage_statistics(runs, 17)
    assert full.under_labeled_count > 100
    for limit in (1, 7, 50, 100, full.under_labeled_count, full.under_labeled_count + 5):
        head = coverage_statistics(runs, 17, limit=limit)
        assert head.under_labeled_coordinates == full.under_labeled_coordinates[:limit]
        assert head.under_labeled_timestamps == full.under_labeled_timestamps[:limit]
    # Worst first, then by timestamp name.
    keys = [(-gap, ts) for ts, gap, _bags, _samples in full.under_labeled_timestamps]
    assert keys == sorted(keys)


def test_long_heatmaps_fall_back_to_monday_weeks_then_months():
    from datetime import date

    import pandas as pd

    from src.services.coverage import coverage_breakdown

    days = pd.date_range("2024-01-03", periods=200, freq="D")  # starts on a Wednesday
    runs = pd.DataFrame(
        {
            "cid": "c",
            "regionid": "r",
            "fieldid": ["f1", "f2"] * 100,
            "twid": "t",
            "lbid": "l",
            "timestamp": [d.strftime("%Y-%m-%dT10-00-00") for d in days],
            "raw_bags": 1,
            "ml_samples": 17,
        }
    )
    daily = coverage_breakdown(runs, {"cid": "c", "regionid": "r"}, 17)
    assert daily.period == "day" and len(daily.days) == 200
    weekly = coverage_breakdown(runs, {"cid": "c", "regionid": "r"}, 17, max_columns=40)
    assert weekly.period == "week" and len(weekly.days) == 29  # 2024-01-01 … 2024-07-15
    assert weekly.days[0] == "2024-01-01" and all(date.fromisoformat(d).weekday() == 0 for d in weekly.days)
    monthly = coverage_breakdown(runs, {"cid": "c", "regionid": "r"}, 17, max_columns=10)
    assert monthly.period == "month" and monthly.days[:2] == ["2024-01-01", "2024-02-01"]
    assert sum(monthly.runs) == 200 and monthly.day_gaps[0][0] == 0.0


def test_a_selection_with_a_skipped_level_matches_the_frame_query(data_state):
    from src.services.coverage import RunSelection, temporal_data

    filters = {"cid": "acme", "fieldid": "f1"}  # regionid left open: not one slice of the sorted runs
    selection = data_state.cloud.select_runs(filters)
    frame = data_state.cloud.get_temporal_data(filters)
    assert len(selection) == len(frame) == 4
    assert temporal_data(selection, 17) == temporal_data(RunSelection.from_frame(frame), 17)
    assert len(data_state.cloud.select_runs({"cid": "nobody"})) == 0
