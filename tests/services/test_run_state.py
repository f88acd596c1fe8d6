"""Run state: cloud + local + extraction → pipeline status and the one next action."""

from __future__ import annotations

from pathlib import Path

import pytest
from cachelib import SimpleCache

from src.models import EXPECTED_EXTRACTION_FILES, DataStatus, NextAction, RunCoordinate
from src.services.data_state import DataStateService
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.storage.local import LocalBucket

LBID = "acme/north/f1/tw1/lb1"
RUNS = [f"{LBID}/2024-05-0{day}T10-00-00" for day in range(1, 6)]


@pytest.fixture
def service(tmp_path: Path) -> DataStateService:
    raw, ml, data = tmp_path / "raw", tmp_path / "ml", tmp_path / "data"
    for index, run in enumerate(RUNS[:4]):  # the fifth run exists only in the ML bucket
        for i in range(index + 1):
            (raw / run).mkdir(parents=True, exist_ok=True)
            (raw / run / f"b{i}.bag").write_bytes(b"x" * 100)
    (ml / RUNS[4]).mkdir(parents=True)
    (ml / RUNS[4] / "s.png").write_bytes(b"p")
    # run 0: nothing local; run 1: downloaded; run 2: downloaded + extracted; run 3: + analysed
    for run in RUNS[1:4]:
        (data / "raw" / run).mkdir(parents=True)
        (data / "raw" / run / "b0.bag").write_bytes(b"x" * 100)
    (data / "raw" / RUNS[1] / ".b1.bag.part").write_bytes(b"x")  # a partial download never counts
    for run in RUNS[2:4]:
        (data / "processed" / run).mkdir(parents=True)
        for name in EXPECTED_EXTRACTION_FILES:
            (data / "processed" / run / name).write_text("x")
    (data / "processed" / RUNS[3] / "analysis").mkdir()
    (data / "processed" / RUNS[3] / "analysis" / "summary.json").write_text("{}")
    inventory = CloudInventoryService(LocalBucket(raw), LocalBucket(ml), tmp_path / "s.parquet", SimpleCache())
    inventory.refresh_inventory()
    return DataStateService(inventory, LocalStateService(data))


def test_each_pipeline_stage_has_its_next_action(service):
    states = [service.get_complete_run_state(RunCoordinate.from_path(run)) for run in RUNS]
    assert [s.pipeline_status for s in states] == [
        DataStatus.NOT_DOWNLOADED,
        DataStatus.DOWNLOADED,
        DataStatus.EXTRACTED,
        DataStatus.ANALYZED,
        DataStatus.NOT_DOWNLOADED,
    ]
    assert [s.next_action for s in states] == [
        NextAction.DOWNLOAD,
        NextAction.EXTRACT,
        NextAction.ANALYZE,
        NextAction.COMPLETE,
        NextAction.DOWNLOAD,
    ]
    assert states[1].local_raw_status.bag_count == 1  # the .part file is not a bag
    assert states[4].blocked_reason == "no bags in the cloud"
    assert states[0].blocked_reason is None and states[0].cloud_raw_status.bag_count == 1


def test_overview_rows_match_the_atomic_answers(service):
    coords = service.generate_coordinates_from_filters({"cid": "acme"})
    assert [c.to_path_str() for c in coords] == RUNS
    rows = service.get_state_overview({"cid": "acme"})
    for row, coord in zip(rows, coords, strict=True):
        state = service.get_complete_run_state(coord)
        assert row["status"] == state.pipeline_status.value
        assert row["next_action"] == state.next_action.value
        assert row["local_bags"] == state.local_raw_status.bag_count
        assert row["cloud_bags"] == state.cloud_raw_status.bag_count
    assert [r["cloud_bags"] for r in rows] == [1, 2, 3, 4, 0]
    assert rows[4]["cloud_samples"] == 1 and rows[4]["blocked"] == "no bags in the cloud"


def test_overview_of_a_narrow_filter_only_walks_that_prefix(service):
    rows = service.get_state_overview(
        {"cid": "acme", "regionid": "north", "fieldid": "f1", "twid": "tw1", "lbid": "lb1"}
    )
    assert len(rows) == 5
    assert service.get_state_overview({"cid": "nobody"}) == []
