"""FleetService on real analyses: KPI files beside the cache, the gathered table, staleness, compare, export."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from src.analytics import AnalyticsService
from src.analytics.kpis import KPIS_FILE
from src.models import RunCoordinate
from src.services import fleet_table as fleet_table_module
from src.services.fleet import FleetInputError, FleetService
from src.services.local_state import LocalStateService
from tests.analytics.helpers import FRAME_STAMPS, frame_rows, write_run

RUNS = [
    "acme/north/f1/tw/lb1/2024-05-06T10-00-00",
    "acme/north/f1/tw/lb1/2024-05-07T10-00-00",
    "acme/north/f1/tw/lb1/2024-05-08T10-00-00",
    "acme/north/f2/tw/lb1/2024-05-13T10-00-00",
]


class Totals:
    """A data-state stand-in that says how many runs with bags the inventory has under any filter."""

    def __init__(self, total: int) -> None:
        self.total = total

    def get_state_summary(self, filters, limit=None):
        return SimpleNamespace(with_cloud_bags=self.total)


@pytest.fixture
def analysed(data_root: Path) -> tuple[FleetService, AnalyticsService]:
    local = LocalStateService(data_root)
    analytics = AnalyticsService(local)
    for index, path in enumerate(RUNS):
        # The third run drops every other frame after the first: half its frame rate.
        stamps = FRAME_STAMPS if index != 2 else FRAME_STAMPS[::2]
        write_run(local.processed_path(path), frames=frame_rows(stamps))
        assert analytics.analyze_run(path, with_plots=False).error_message is None
    return FleetService(analytics, Totals(10)), analytics


def test_each_analysis_writes_its_kpis_beside_the_cache(analysed):
    _, analytics = analysed
    path = analytics.analysis_path(RUNS[0]) / KPIS_FILE
    doc = json.loads(path.read_text())
    summary = json.loads((analytics.analysis_path(RUNS[0]) / "summary.json").read_text())
    assert doc["analysis_id"] == summary["analysis_id"]
    assert doc["latency_p95_ms"] == pytest.approx(summary["summary"]["latency_p95_ms"])
    assert doc["tracks"] == 2 and doc["duration_s"] == pytest.approx(2.0)
    assert doc["tracks_per_min"] == pytest.approx(2 / (2.0 / 60))
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # nothing half-written left


def test_report_rolls_up_per_child_and_counts_what_is_not_analysed(analysed):
    fleet, _ = analysed
    report = fleet.get_report({"cid": "acme", "regionid": "north"})
    assert report.level == "fieldid"
    assert report.by_child["runs"].to_dict() == {"f1": 3, "f2": 1}
    assert (report.analysed_runs, report.total_runs, report.not_analysed) == (4, 10, 6)
    assert report.over_time["runs"].tolist() == [1, 1, 1, 1]
    assert fleet.get_report({"cid": "acme"}, period="week").over_time["runs"].tolist() == [3, 1]
    with pytest.raises(FleetInputError):
        fleet.get_report({}, period="year")
    with pytest.raises(FleetInputError):
        fleet.get_report({}, threshold=0)


def test_the_table_is_reused_and_caught_up_from_change_markers_without_a_walk(analysed, monkeypatch):
    fleet, analytics = analysed
    first = fleet.table.get()
    assert fleet.table.get() is first  # nothing changed: the same table
    before = fleet.table.version()
    # From now on a walk over every run would fail the test: only the changed run may be read.
    monkeypatch.setattr(fleet_table_module, "run_dirs", lambda *_: pytest.fail("walked every run"))
    analytics.invalidate(RUNS[3])  # an extraction is about to rewrite the run's outputs
    assert fleet.table.version() > before
    assert RUNS[3] not in fleet.table.get()["coordinate"].tolist() and len(fleet.table.get()) == 3
    # Another worker starts from the snapshot the first one saved, then applies the newer markers.
    other = FleetService(analytics, Totals(10))
    assert sorted(other.get_runs({})["coordinate"]) == sorted(RUNS[:3])
    analytics.analyze_run(RUNS[3], force_refresh=True, with_plots=False)
    assert RUNS[3] in other.get_runs({})["coordinate"].tolist()
    assert RUNS[3] in fleet.get_runs({})["coordinate"].tolist()


def test_a_run_whose_outputs_changed_drops_out_until_analysed_again(analysed):
    fleet, analytics = analysed
    run_dir = analytics.local.processed_path(RUNS[1])
    write_run(run_dir, frames=frame_rows(FRAME_STAMPS[:5]))  # re-extracted behind the service's back
    fleet.table._gather_all()  # a worker starting without a snapshot walks every run
    assert RUNS[1] not in fleet.get_runs({})["coordinate"].tolist()
    analytics.analyze_run(RUNS[1], force_refresh=True, with_plots=False)
    assert RUNS[1] in fleet.get_runs({})["coordinate"].tolist()


def test_compare_two_runs_and_a_run_with_its_lbid_median(analysed):
    fleet, _ = analysed
    comparison = fleet.compare(RUNS[0], RUNS[2])
    assert comparison.b.kpis["mean_fps"] < comparison.a.kpis["mean_fps"]
    assert comparison.differences()["mean_fps"] == pytest.approx(
        comparison.b.kpis["mean_fps"] - comparison.a.kpis["mean_fps"]
    )
    assert comparison.a.latency_ms and comparison.a.track_lifetimes_s and len(comparison.a.fps_profile) == 50
    median = fleet.compare(RUNS[0])
    # The other runs of lb1 under acme/north/f1: runs 1 and 2.
    assert median.b.coordinates == [RUNS[1], RUNS[2]]
    assert median.b.kpis["mean_fps"] == pytest.approx((median.a.kpis["mean_fps"] + comparison.b.kpis["mean_fps"]) / 2)
    with pytest.raises(FleetInputError, match="No other analysed run"):
        fleet.compare(RUNS[3])
    with pytest.raises(FleetInputError, match="not analysed"):
        fleet.compare("acme/north/f1/tw/lb1/never")
    with pytest.raises(FleetInputError, match="Not a run"):
        fleet.compare("../../etc/passwd")


def test_export_neutralises_cells_a_spreadsheet_would_run(data_root):
    local = LocalStateService(data_root)
    analytics = AnalyticsService(local)
    path = RunCoordinate("=HYPERLINK(1)", "+r", "-f", "@t", "l", "2024-05-06T10-00-00").to_path_str()
    write_run(local.processed_path(path))
    analytics.analyze_run(path, with_plots=False)
    text = FleetService(analytics, Totals(1)).export_csv({})
    row = pd.read_csv(io.StringIO(text), keep_default_na=False).iloc[0]
    assert row["coordinate"].startswith("'=") and row["cid"] == "'=HYPERLINK(1)"
    assert (row["regionid"], row["fieldid"], row["twid"], row["lbid"]) == ("'+r", "'-f", "'@t", "l")
    assert isinstance(row["mean_fps"], float)  # numbers are left alone
