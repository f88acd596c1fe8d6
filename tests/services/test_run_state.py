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


def old_rows(service: DataStateService, filters: dict[str, str]) -> list[dict]:
    """Return the overview rows the per-run path builds: one RunCoordinate and one full derive per run."""
    return service.get_state_overview_data(service.generate_coordinates_from_filters(filters), filters)


def write(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def extract(data: Path, run: str, summary: bool = False) -> None:
    for name in EXPECTED_EXTRACTION_FILES:
        write(data / "processed" / run / name)
    if summary:
        write(data / "processed" / run / "analysis" / "summary.json", "{}")


ML_ONLY = f"{LBID}/2024-05-06T10-00-00"  # a sixth run, only in the ML bucket and with nothing local


@pytest.fixture
def mixed(service: DataStateService, tmp_path: Path) -> DataStateService:
    """The five runs above and a sixth, plus local data the inventory does not know; run 5 is extracted locally."""
    write(tmp_path / "ml" / ML_ONLY / "s.png")
    service.cloud.refresh_inventory()
    data = service.local.data_root
    extract(data, RUNS[4], summary=True)  # extracted and summarised, but no bags anywhere: not analysed
    for run in (f"{LBID}/2024-06-01T10-00-00", "acme/north/f1/tw1/lb9/2024-05-01T10-00-00"):  # local only
        write(data / "raw" / run / "b0.bag")
        extract(data, run, summary=True)
    write(data / "raw" / "acme/n..orth/f1/tw1/lb1/2024-05-01T10-00-00/b0.bag")  # no inventory run has this name
    return service


FULL = {"cid": "acme", "regionid": "north", "fieldid": "f1", "twid": "tw1", "lbid": "lb1"}


@pytest.mark.parametrize("filters", [{}, {"cid": "acme"}, FULL], ids=["none", "cid", "lbid"])
def test_summary_matches_the_per_run_rows_and_counts_inventory_runs_only(mixed, filters):
    rows = old_rows(mixed, filters)
    summary = mixed.get_state_summary(filters)
    assert summary.rows == rows
    assert not summary.truncated
    kpis = (summary.total_runs, summary.with_cloud_bags, summary.downloaded, summary.extracted, summary.analyzed)
    assert kpis == (
        len(rows),
        sum(r["cloud_bags"] > 0 for r in rows),
        sum(r["downloaded"] for r in rows),
        sum(r["extracted"] for r in rows),
        sum(r["analyzed"] for r in rows),
    )
    # runs 1-3 downloaded; 2, 3 and the fifth (ML only) extracted; only run 3 analysed; local-only runs count nowhere
    assert kpis == (6, 4, 3, 3, 1)
    statuses = ["not_downloaded", "downloaded", "extracted", "analyzed", "not_downloaded", "not_downloaded"]
    assert [r["status"] for r in summary.rows] == statuses
    assert [r["blocked"] for r in summary.rows] == ["", "", "", "", "no bags in the cloud", "no bags in the cloud"]
    assert summary.rows[4]["extracted"] and not summary.rows[5]["extracted"]


def test_a_limit_keeps_the_first_rows_and_counts_every_run(mixed):
    everything = mixed.get_state_summary({"cid": "acme"})
    first_two = mixed.get_state_summary({"cid": "acme"}, limit=2)
    assert first_two.rows == old_rows(mixed, {"cid": "acme"})[:2]
    assert first_two.truncated and first_two.total_runs == 6
    assert (first_two.downloaded, first_two.extracted, first_two.analyzed) == (3, 3, 1)
    assert first_two.with_cloud_bags == everything.with_cloud_bags
    assert mixed.get_state_summary({"cid": "acme"}, limit=5).truncated
    assert not mixed.get_state_summary({"cid": "acme"}, limit=6).truncated


def test_a_narrow_filter_counts_only_its_runs(mixed):
    assert mixed.get_state_summary({**FULL, "lbid": "lb9"}).total_runs == 0  # local data alone is not a run
    empty = mixed.get_state_summary({"cid": "nobody"})
    assert (empty.rows, empty.total_runs, empty.downloaded, empty.truncated) == ([], 0, 0, False)


@pytest.mark.parametrize(
    ("filters", "limit", "named"),
    [({"cid": "../etc"}, None, "cid"), ({"cid": "acme", "regionid": "a/b"}, 10, "regionid"), ({}, -1, "limit")],
)
def test_summary_rejects_bad_filters_and_limits(service, filters, limit, named):
    with pytest.raises(ValueError, match=named):
        service.get_state_summary(filters, limit=limit)
