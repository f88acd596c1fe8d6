"""Tests for the cloud inventory: classification, queries, snapshots, sharing and outages."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from src.models.coordinate import RunCoordinate, validate_part
from src.services import inventory as inventory_module
from src.services.inventory import (
    GENERATION_KEY,
    REFRESH_LOCK_KEY,
    CloudInventoryService,
    build_inventory,
    read_snapshot,
)
from src.services.timestamps import (
    is_timestamp_sorted,
    parse_timestamp,
    parse_timestamps,
    parse_unique_timestamps,
    sort_timestamps,
    timestamp_order,
)
from src.storage.base import ObjectInfo, StorageError, StorageUnavailable
from tests.services.conftest import (
    LONG_PART,
    RUN_A,
    RUN_B,
    RUN_D,
    RUN_E,
    Env,
)

L1 = ("c1", "r1", "f1", "t1", "l1")
# Timestamp rule: parsed ascending (ties by raw string), then unparseable names by raw string.
L1_TIMESTAMPS = ["20240101_000000", "2024-05-14T10-32-00", "20240514T103200", "alpha", "garbage"]


# -- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("2024-05-14T10-32-00", datetime(2024, 5, 14, 10, 32)),
        ("2024-05-14T10:32:00", datetime(2024, 5, 14, 10, 32)),
        ("2024-05-14_10-32-00", datetime(2024, 5, 14, 10, 32)),
        ("20240514_103200", datetime(2024, 5, 14, 10, 32)),
        ("20240514T103200", datetime(2024, 5, 14, 10, 32)),
        ("2024-05-14", datetime(2024, 5, 14)),
        ("2024-05-14T10:32:00.5Z", datetime(2024, 5, 14, 10, 32, 0, 500000)),
        ("2024-05-14T10:32:00+02:00", datetime(2024, 5, 14, 8, 32)),
        ("2024-02-30", None),
        ("2024-05-14T24:00:00", None),
        ("1715682720", None),  # epoch seconds are not a format we read
        ("garbage", None),
        ("2024-05-14\n", None),
        ("\u0662\u0660\u0662\u0664-\u0660\u0665-\u0661\u0664", None),  # Arabic-Indic digits
    ],
)
def test_parse_timestamp_formats(name: str, expected: datetime | None) -> None:
    assert parse_timestamp(name) == expected
    vector = parse_unique_timestamps([name])[0]
    assert (np.isnat(vector) and expected is None) or vector == np.datetime64(expected, "us")


@given(st.lists(st.one_of(st.text(max_size=30), st.from_regex(r"[0-9]{8}[T_ ][0-9]{6}", fullmatch=True))))
def test_vectorised_parser_agrees_with_scalar(names: list[str]) -> None:
    parsed = parse_unique_timestamps(names)
    for name, value in zip(names, parsed, strict=True):
        scalar = parse_timestamp(name)
        assert (scalar is None and np.isnat(value)) or value == np.datetime64(scalar, "us")


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_iso_round_trip(value: datetime) -> None:
    assert parse_timestamp(value.isoformat()) == value


def test_parse_timestamps_maps_uniques_back() -> None:
    series = pd.Series(["2024-05-14", "bad", "2024-05-14", "20240101_000000"])
    parsed = parse_timestamps(series)
    assert parsed.dtype == np.dtype("datetime64[us]")
    assert parsed[0] == parsed[2] == np.datetime64("2024-05-14")
    assert np.isnat(parsed[1])
    categorical = parse_timestamps(pd.Categorical(series))
    np.testing.assert_array_equal(categorical, parsed)


def test_timestamp_order_rule() -> None:
    names = ["zeta", "2024-05-14T10:32:00", "alpha", "2024-05-14T10-32-00", "2023-01-01"]
    ordered = ["2023-01-01", "2024-05-14T10-32-00", "2024-05-14T10:32:00", "alpha", "zeta"]
    assert sort_timestamps(names) == ordered
    parsed = parse_unique_timestamps(ordered)
    assert is_timestamp_sorted(np.array(ordered, dtype=object), parsed)
    assert not is_timestamp_sorted(np.array(names, dtype=object), parse_unique_timestamps(names))
    assert list(timestamp_order(ordered, parsed)) == list(range(len(ordered)))


@given(st.text(max_size=140))
def test_vectorised_part_check_agrees_with_validate_part(value: str) -> None:
    try:
        validate_part("x", value)
        expected = True
    except ValueError:
        expected = False
    assert bool(inventory_module._valid_parts(pa.array([value]))[0]) is expected


# -- building and per-run queries ---------------------------------------------------------------


def test_cache_info_counts(service: CloudInventoryService) -> None:
    service.get_full_inventory()
    info = service.get_cache_info()
    assert info["available"] is True
    assert info["objects"] == {"raw": 12, "ml": 10}
    assert info["bytes"] == {"raw": 5 + 10 + 100 + 200 + 7 + 50 + 60 + 1 + 1 + 1 + 1 + 3, "ml": 44}
    assert info["kinds"]["raw"] == {"bag": 8, "sample": 0, "label": 0, "other": 2, "inflight": 2}
    assert info["kinds"]["ml"] == {"bag": 0, "sample": 5, "label": 3, "other": 1, "inflight": 1}
    assert info["runs"] == 7
    assert info["unrecognised_count"] == 3
    assert sorted(info["unrecognised_sample"]) == sorted(
        [
            "raw:c1/r1/f1/t1/l1/stray.txt",
            f"raw:c1/r1/f1/t1/{LONG_PART}/2024-01-01/a.bag",
            "ml:c1/readme.md",
        ]
    )
    assert info["stale_since"] is None and info["last_error"] is None
    assert info["age_seconds"] == 0.0
    assert info["built_at"] == datetime.fromtimestamp(1_760_000_000, tz=UTC).isoformat()
    assert info["last_refresh_duration"] >= 0


def test_in_flight_ml_objects_count_as_inflight(env: Env) -> None:
    inventory = env.service().get_full_inventory()
    ml = inventory.objects[inventory.objects["bucket"] == "ml"]
    assert ml.loc[ml["rel_name"] == "upload.jpg.tmp", "kind"].tolist() == ["inflight"]


def test_raw_bags_info(service: CloudInventoryService) -> None:
    status = service.get_raw_bags_info(RunCoordinate.from_path(RUN_A))
    assert status.exists is True
    assert status.bag_count == 4
    assert status.bag_names == ["a.bag", "bag_x/bag_x_0.mcap", "bag_x/bag_x_1.mcap", "c.db3"]
    assert status.total_size == 312
    assert service.get_raw_bags_info(RUN_D).bag_names == ["y.BAG"]
    ml_only = service.get_raw_bags_info(RUN_E)
    assert (ml_only.exists, ml_only.bag_count, ml_only.bag_names) == (False, 0, [])
    missing = service.get_raw_bags_info("c9/r1/f1/t1/l1/2024-01-01")
    assert (missing.exists, missing.bag_count, missing.total_size) == (False, 0, 0)


def test_raw_objects_include_metadata_and_skip_in_flight(env: Env, service: CloudInventoryService) -> None:
    objects = service.get_raw_objects(RunCoordinate.from_path(RUN_A))
    names = [o.name for o in objects]
    assert names == [
        f"{RUN_A}/{rel}"
        for rel in (
            "a.bag",
            "bag_x/bag_x_0.mcap",
            "bag_x/bag_x_1.mcap",
            "bag_x/metadata.yaml",
            "c.db3",
            "notes.txt",
        )
    ]
    listed = {o.name: o for o in env.raw.inner.iter_objects(RUN_A)}
    for info in objects:
        assert info == listed[info.name]  # size, updated, crc32c, md5 and generation survive


def test_ml_samples_info(service: CloudInventoryService) -> None:
    info = service.get_ml_samples_info(RUN_A)
    assert info == {
        "sample_count": 3,
        "label_count": 3,
        "total_size": 2 + 3 + 4 + 5 + 1 + 1,
        "sample_names": ["img/0001.jpg", "img/0002.PNG", "img/0004.jpeg"],
    }
    assert service.get_ml_samples_info(RUN_B)["sample_count"] == 0


def test_coordinate_cloud_state(service: CloudInventoryService) -> None:
    state = service.get_coordinate_cloud_state(RUN_A)
    assert state["coordinate"] == RUN_A
    assert state["in_raw"] and state["in_ml"]
    assert state["raw"]["bag_count"] == 4
    assert state["ml"] == {"sample_count": 3, "label_count": 3, "total_size": 16}
    assert state["stale"] is False
    ml_only = service.get_coordinate_cloud_state(RUN_E)
    assert (ml_only["in_raw"], ml_only["in_ml"]) == (False, True)


# -- hierarchy and filters ----------------------------------------------------------------------


def test_hierarchy_levels(service: CloudInventoryService) -> None:
    assert service.get_hierarchy_level("cid") == ["c1", "c2"]
    assert service.get_hierarchy_level("regionid", ("c1",)) == ["r1"]
    assert service.get_hierarchy_level("fieldid", ("c1", "r1")) == ["f1", "f2"]
    assert service.get_hierarchy_level("timestamp", L1) == L1_TIMESTAMPS
    assert service.get_hierarchy_level("timestamp", ("c1", "r1", "f2", "t1", "l1")) == ["2024-05-14"]
    # A shorter parent unions over the levels in between.
    assert service.get_hierarchy_level("fieldid", ("c1",)) == ["f1", "f2"]
    assert service.get_hierarchy_level("lbid") == ["l1"]
    assert service.get_hierarchy_level("regionid", ("nope",)) == []
    # The long part lives only in an unrecognised object, so it is no option.
    assert service.get_hierarchy_level("lbid", ("c1", "r1", "f1", "t1")) == ["l1"]


@pytest.mark.parametrize(
    ("level", "parent", "message"),
    [
        ("depth", (), "unknown hierarchy level"),
        ("cid", ("c1",), "at most 0"),
        ("fieldid", ("c1", ".."), "regionid must not be"),
        ("regionid", ("a/b",), "cid must not contain"),
    ],
)
def test_hierarchy_level_rejects_bad_input(
    service: CloudInventoryService, level: str, parent: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        service.get_hierarchy_level(level, parent)


def test_temporal_data_all_runs_in_timestamp_order(service: CloudInventoryService) -> None:
    frame = service.get_temporal_data({})
    assert list(frame.columns) == [
        "cid",
        "regionid",
        "fieldid",
        "twid",
        "lbid",
        "timestamp",
        "ts_parsed",
        "raw_bags",
        "ml_samples",
    ]
    assert frame["timestamp"].tolist() == [
        "2023-01-01T00:00:00",
        "20240101_000000",
        "2024-05-14",
        "2024-05-14T10-32-00",
        "20240514T103200",
        "alpha",
        "garbage",
    ]
    assert frame["raw_bags"].tolist() == [0, 1, 1, 4, 0, 1, 1]
    assert frame["ml_samples"].tolist() == [1, 0, 0, 3, 1, 0, 0]
    assert frame["ts_parsed"].isna().tolist() == [False] * 5 + [True] * 2
    assert str(frame["ts_parsed"].dtype) == "datetime64[us]"
    assert frame["cid"].dtype == "str"
    assert frame.index.tolist() == list(range(7))


@pytest.mark.parametrize(
    ("filters", "timestamps"),
    [
        ({"cid": "c1"}, ["20240101_000000", "2024-05-14", *L1_TIMESTAMPS[1:]]),
        (
            {"cid": "c1", "regionid": None, "fieldid": ""},
            ["20240101_000000", "2024-05-14", *L1_TIMESTAMPS[1:]],
        ),
        (dict(zip(("cid", "regionid", "fieldid", "twid", "lbid"), L1, strict=True)), L1_TIMESTAMPS),
        ({"cid": "c1", "fieldid": "f2"}, ["2024-05-14"]),  # not a prefix: filtered after the prefix
        ({"lbid": "l1", "cid": "c2"}, ["2023-01-01T00:00:00"]),
        ({"cid": "c3"}, []),
    ],
)
def test_temporal_data_filters(
    service: CloudInventoryService, filters: dict[str, str | None], timestamps: list[str]
) -> None:
    assert service.get_temporal_data(filters)["timestamp"].tolist() == timestamps


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"cid": ".."}, "cid must not be"),
        ({"cid": "x" * 129}, "longer than"),
        ({"depth": "x"}, "unknown filter"),
    ],
)
def test_temporal_data_rejects_bad_filters(
    service: CloudInventoryService, filters: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        service.get_temporal_data(filters)


def test_get_runs_has_every_aggregate(service: CloudInventoryService) -> None:
    runs = service.get_runs({"cid": "c1", "regionid": "r1", "fieldid": "f1"})
    row = runs[runs["timestamp"] == "2024-05-14T10-32-00"].iloc[0]
    assert row[["raw_bags", "raw_bytes", "raw_objects"]].tolist() == [4, 312, 6]
    assert row[["ml_samples", "ml_labels", "ml_bytes", "ml_objects"]].tolist() == [3, 3, 16, 7]
    assert "obj_start" not in runs.columns


def test_path_exists(service: CloudInventoryService) -> None:
    assert service.path_exists(("c1",))
    assert service.path_exists(tuple(RUN_A.split("/")))
    assert service.path_exists((*RUN_A.split("/"), "bag_x"))
    assert service.path_exists((*RUN_A.split("/"), "bag_x", "metadata.yaml"))
    assert not service.path_exists((*RUN_A.split("/"), "d.bag.active"))  # in flight
    assert not service.path_exists((*RUN_A.split("/"), "bag"))  # a name prefix is not a folder
    assert not service.path_exists(("c2",))
    assert service.path_exists(("c2",), "ml")
    assert not service.path_exists(("c1", "r1", "f1", "t1", LONG_PART[:128]))
    with pytest.raises(ValueError, match="bucket_type"):
        service.path_exists(("c1",), "cold")


def test_empty_buckets(empty_env: Env) -> None:
    service = empty_env.service()
    inventory = service.get_full_inventory()
    assert len(inventory.objects) == 0 and inventory.run_count == 0
    assert service.get_hierarchy_level("cid") == []
    frame = service.get_temporal_data({"cid": "c1"})
    assert frame.empty and "ts_parsed" in frame.columns
    assert service.get_raw_bags_info(RUN_A).exists is False
    assert read_snapshot(empty_env.snapshot).run_count == 0


def test_undecodable_file_name_is_unrecognised(env: Env) -> None:
    run_dir = env.raw_root.joinpath(*RUN_B.split("/"))
    with open(os.path.join(os.fsencode(run_dir), b"bad\xff.bag"), "wb") as out:
        out.write(b"x")
    info = env.service().get_full_inventory()
    assert info.unrecognised_count == 4
    assert any(name.startswith(f"raw:{RUN_B}/bad") for name in info.unrecognised)


def test_build_from_a_dataframe_listing() -> None:
    listing = pd.DataFrame(
        {
            "bucket": ["raw", "ml", "raw"],
            "name": [f"{RUN_A}/a.bag", f"{RUN_A}/i.jpg", "short/name"],
            "size": [10, 20, 30],
            "updated": pd.to_datetime(["2024-01-01", None, "2024-01-02"], utc=True),
            "crc32c": ["AAAAAA==", None, None],
            "md5": [None, "q83vEjRWeJA=", None],
            "generation": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    inventory = build_inventory(listing, built_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert inventory.runs[["raw_bags", "ml_samples"]].values.tolist() == [[1, 1]]
    assert inventory.unrecognised == ["raw:short/name"]
    assert inventory.objects["generation"].isna().tolist() == [False, True]


# -- snapshot -----------------------------------------------------------------------------------


class _NoListing:
    """A bucket that fails the test if anything lists it."""

    url = "none://"

    def iter_objects(self, prefix: str = "") -> None:
        raise AssertionError("the snapshot should have been used")


def test_snapshot_round_trip(env: Env) -> None:
    built = env.service().get_full_inventory()
    fresh = CloudInventoryService(_NoListing(), _NoListing(), env.snapshot, env.cache(), clock=env.clock)
    loaded = fresh.get_full_inventory()
    pd.testing.assert_frame_equal(built.objects, loaded.objects)
    pd.testing.assert_frame_equal(built.runs, loaded.runs)
    assert (loaded.unrecognised, loaded.unrecognised_count) == (built.unrecognised, built.unrecognised_count)
    assert loaded.built_at == built.built_at and loaded.counts == built.counts
    assert fresh.get_hierarchy_level("timestamp", L1) == L1_TIMESTAMPS
    assert str(built.objects["updated"].dtype) == "datetime64[us, UTC]"
    assert {c: str(t) for c, t in loaded.objects.dtypes.items() if str(t) == "category"}.keys() >= {
        "cid",
        "timestamp",
        "bucket",
        "kind",
    }
    assert not list(env.snapshot.parent.glob("*.tmp"))  # the atomic write left no temp file


def test_missing_snapshot_without_build(empty_env: Env) -> None:
    service = empty_env.service()
    assert service.get_full_inventory(build_if_missing=False) is None
    assert service.get_cache_info()["available"] is False
    assert empty_env.raw.listings == 0


def test_corrupt_snapshot_triggers_rebuild_with_warning(env: Env) -> None:
    env.snapshot.parent.mkdir(parents=True)
    env.snapshot.write_bytes(b"PAR1 this is not parquet")
    service = env.service()
    with capture_logs() as logs:
        inventory = service.get_full_inventory()
    assert inventory.run_count == 7
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings and warnings[0]["event"] == "inventory_snapshot_unusable"
    assert read_snapshot(env.snapshot).run_count == 7  # the rebuild replaced the bad file


def test_wrong_schema_version_triggers_rebuild(env: Env) -> None:
    env.service().get_full_inventory()
    body = json.loads(env.snapshot.read_text())
    env.snapshot.write_text(json.dumps({**body, "schema": 1}))
    listings = env.raw.listings
    with capture_logs() as logs:
        assert env.service().get_full_inventory().run_count == 7
    assert env.raw.listings == listings + 1
    assert any("schema version" in e.get("error", "") for e in logs)


def test_unsorted_snapshot_is_rejected(env: Env) -> None:
    env.service().get_full_inventory()
    runs_file = env.snapshot.parent / json.loads(env.snapshot.read_text())["snapshot"] / "runs.arrow"
    with pa.memory_map(str(runs_file)) as source:
        table = ipc.open_file(source).read_all()
    reversed_rows = table.take(pa.array(np.arange(table.num_rows)[::-1]))
    with ipc.new_file(str(runs_file), reversed_rows.schema) as writer:
        writer.write_table(reversed_rows)
    with pytest.raises(inventory_module.SnapshotError, match="not sorted"):
        read_snapshot(env.snapshot)


# -- sharing between workers --------------------------------------------------------------------


def test_second_instance_sees_first_instance_refresh(env: Env) -> None:
    worker_a = env.service()
    worker_a.get_full_inventory()
    worker_b = CloudInventoryService(_NoListing(), _NoListing(), env.snapshot, env.cache(), clock=env.clock)
    assert worker_b.get_hierarchy_level("cid") == ["c1", "c2"]
    env.add_raw("c3/r1/f1/t1/l1/2024-06-01/new.bag")
    generation = env.cache().get(GENERATION_KEY)
    worker_a.refresh_inventory()
    assert env.cache().get(GENERATION_KEY) > generation
    # B never lists: it reloads A's snapshot because the shared generation moved.
    assert worker_b.get_hierarchy_level("cid") == ["c1", "c2", "c3"]
    assert worker_b.get_cache_info()["local_generation"] == env.cache().get(GENERATION_KEY)


def test_mark_stale_makes_next_access_refresh(env: Env) -> None:
    worker_a, worker_b = env.service(), env.service()
    worker_a.get_full_inventory()
    worker_b.get_full_inventory()
    listings = env.raw.listings
    env.add_raw("c3/r1/f1/t1/l1/2024-06-01/new.bag")
    env.clock.now += 5
    worker_b.mark_stale("upload finished")
    info = worker_a.get_cache_info()
    assert info["stale_reason"] == "upload finished"
    assert info["stale_since"] == datetime.fromtimestamp(env.clock.now, tz=UTC).isoformat()
    assert "c3" in worker_a.get_hierarchy_level("cid")
    assert env.raw.listings == listings + 1
    assert worker_b.get_hierarchy_level("cid") == ["c1", "c2", "c3"]
    assert env.raw.listings == listings + 1  # B reloaded A's snapshot instead of listing again
    assert worker_b.get_cache_info()["stale_since"] is None


def test_stale_refresh_skipped_while_another_worker_refreshes(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    env.cache().set(REFRESH_LOCK_KEY, "someone-else", timeout=0)
    service.mark_stale("changed")
    listings = env.raw.listings
    assert service.get_full_inventory().run_count == 7
    assert env.raw.listings == listings


def test_queries_during_refresh_are_consistent(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    errors: list[BaseException] = []

    def query() -> None:
        try:
            for _ in range(20):
                assert service.get_temporal_data({"cid": "c1"})["raw_bags"].sum() == 8
                assert service.get_raw_bags_info(RUN_A).bag_count == 4
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=query) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(3):
        service.refresh_inventory()
    for thread in threads:
        thread.join()
    assert errors == []


def test_queries_do_not_wait_for_a_listing(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    entered, gate = threading.Event(), threading.Event()
    original = env.raw.iter_objects

    def slow_listing(prefix: str = "") -> Iterator[ObjectInfo]:
        entered.set()
        gate.wait(10)
        return original(prefix)

    env.raw.iter_objects = slow_listing  # type: ignore[method-assign]
    refresher = threading.Thread(target=service.refresh_inventory)
    refresher.start()
    try:
        assert entered.wait(10)
        env.service().mark_stale("another worker uploaded")  # moves the shared generation
        started = time.monotonic()
        assert service.get_hierarchy_level("cid") == ["c1", "c2"]
        assert time.monotonic() - started < 2
    finally:
        gate.set()
        refresher.join()


def test_progress_is_reported(env: Env) -> None:
    seen: list[tuple[str, int]] = []
    env.service().refresh_inventory(progress=lambda message, count: seen.append((message, count)))
    messages = [m for m, _ in seen]
    assert ("listed raw bucket", 14) in seen and ("listed ml bucket", 11) in seen
    assert messages[-2:] == ["writing snapshot", "done"]


# -- outages ------------------------------------------------------------------------------------


def test_unreachable_bucket_keeps_last_good_snapshot(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    good_bytes = env.snapshot.read_bytes()
    env.ml.down = True
    env.clock.now += 100
    first_failure = env.clock.now
    with pytest.raises(StorageUnavailable) as excinfo:
        service.refresh_inventory()
    message = str(excinfo.value)
    assert "\n" not in message and "ml bucket" in message and "503" in message
    assert isinstance(excinfo.value, StorageError)
    env.clock.now += 100
    with pytest.raises(StorageError):
        service.refresh_inventory()

    assert env.snapshot.read_bytes() == good_bytes
    assert service.get_full_inventory().run_count == 7  # last good data, no raise
    info = service.get_cache_info()
    assert info["stale_since"] == datetime.fromtimestamp(first_failure, tz=UTC).isoformat()
    assert "ml bucket" in info["stale_reason"] and "ml bucket" in info["last_error"]
    assert info["age_seconds"] == 200
    other_worker = env.service()
    assert other_worker.get_cache_info()["stale_since"] == info["stale_since"]
    assert other_worker.get_hierarchy_level("cid") == ["c1", "c2"]

    env.ml.down = False
    env.clock.now += 100
    service.refresh_inventory()
    info = service.get_cache_info()
    assert (info["stale_since"], info["stale_reason"], info["last_error"]) == (None, None, None)


def test_failed_stale_refresh_serves_old_data_and_backs_off(env: Env) -> None:
    service = env.service(retry_interval=60.0)
    service.get_full_inventory()
    service.mark_stale("changed")
    env.raw.down = True
    listings = env.raw.listings
    assert service.get_full_inventory().run_count == 7  # tried, failed, served the last good copy
    assert env.raw.listings == listings + 1
    env.clock.now += 30
    service.get_full_inventory()
    assert env.raw.listings == listings + 1  # within the retry interval: no new attempt
    env.clock.now += 31
    env.raw.down = False
    env.add_raw("c3/r1/f1/t1/l1/2024-06-01/new.bag")
    assert service.get_hierarchy_level("cid") == ["c1", "c2", "c3"]
    assert service.get_cache_info()["stale_since"] is None


def test_missing_snapshot_and_unreachable_bucket_raises(empty_env: Env) -> None:
    empty_env.raw.down = True
    with pytest.raises(StorageError, match="raw bucket"):
        empty_env.service().get_full_inventory()
    assert not empty_env.snapshot.exists()


def test_snapshot_path_is_plain_path(tmp_path: Path, env: Env) -> None:
    service = CloudInventoryService(env.raw, env.ml, str(tmp_path / "x.parquet"), env.cache())  # type: ignore[arg-type]
    assert service.get_full_inventory().run_count == 7
