"""Inventory snapshots at scale: subtree refresh, workers sharing one mapped snapshot, crashes during a refresh."""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cachelib import FileSystemCache

from src.models.coordinate import HIERARCHY_LEVELS
from src.services.inventory import REFRESH_LOCK_KEY, CloudInventoryService, read_snapshot
from src.services.inventory_refresh import RefreshFailed, RefreshProcess
from src.storage import Bucket, open_bucket
from src.storage.base import ObjectInfo
from tests.services.conftest import RAW_TREE, RUN_A, RUN_E, Env
from tests.storage.helpers import FAST_RETRY

LB = "c1/r1/f1/t1/l1"
NEW_LB = "c1/r1/f1/t1/l7"


def _state(service: CloudInventoryService) -> dict[str, Any]:
    """Return everything a user can see of an inventory: runs with counts, objects of each run, totals."""
    runs = service.get_runs({})
    objects = {}
    for row in runs.to_dict("records"):
        coordinate = "/".join(str(row[level]) for level in HIERARCHY_LEVELS)
        objects[coordinate] = (
            [(o.name, o.size) for o in service.get_raw_objects(coordinate)],
            service.get_ml_samples_info(coordinate),
        )
    info = service.get_cache_info()
    totals = {k: info[k] for k in ("objects", "bytes", "kinds", "runs", "unrecognised_count")}
    return {
        "runs": runs.drop(columns=["ts_parsed"]).to_dict("records"),
        "objects": objects,
        "totals": totals,
        "unrecognised": sorted(info["unrecognised_sample"]),
        "levels": [service.get_hierarchy_level(level, ()) for level in HIERARCHY_LEVELS[:1]],
    }


def _change_subtree(add: Callable[[str, int], None], delete: Callable[[str], None]) -> None:
    """Change the lbid LB and add a new lbid: new runs, a removed run, new objects, a new stray."""
    add(f"{LB}/2031-01-01T00-00-00/new.bag", 3)  # a new run with a timestamp no run had
    add(f"{LB}/2024-05-14T10-32-00/late.bag", 4)  # a new object in an existing run
    add(f"{LB}/stray2.txt", 1)  # wrong depth under the prefix: unrecognised
    delete(f"{LB}/20240101_000000/z.bag")  # the run's only object: the run disappears
    add(f"{NEW_LB}/zz-not-a-date/a.bag", 2)


def _local_change(env: Env) -> None:
    def add(name: str, size: int) -> None:
        env.add_raw(name, size)

    def delete(name: str) -> None:
        env.raw_root.joinpath(*name.split("/")).unlink()

    _change_subtree(add, delete)


def test_subtree_refresh_matches_a_full_refresh(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    _local_change(env)
    listings = env.raw.listings
    merged = service.refresh_inventory(prefixes=[LB, NEW_LB])
    assert env.raw.listings == listings + 2  # one listing per prefix, never the whole bucket
    assert merged.run_count == 8
    full = env.service()
    full.refresh_inventory()
    assert _state(service) == _state(full)
    assert "2031-01-01T00-00-00" in service.get_hierarchy_level("timestamp", tuple(LB.split("/")))
    assert service.get_raw_bags_info(f"{LB}/20240101_000000").exists is False


def test_subtree_refresh_of_one_run_and_of_an_unknown_prefix(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    env.add_raw(f"{RUN_A}/extra.bag", 9)
    service.refresh_inventory(prefixes=[RUN_A])
    assert service.get_raw_bags_info(RUN_A).bag_count == 5
    service.refresh_inventory(prefixes=["c9"])  # nothing there: no change, no error
    assert service.get_cache_info()["runs"] == 7


def test_subtree_refresh_keeps_a_stale_mark_it_does_not_cover(env: Env) -> None:
    service = env.service()
    service.get_full_inventory()
    service.mark_stale("somebody changed c2")
    service.refresh_inventory(prefixes=[LB])
    assert service.get_cache_info()["stale_reason"] == "somebody changed c2"


def test_bad_prefixes_are_refused(env: Env) -> None:
    service = env.service()
    for bad in ("", "c1/../x", "a/b/c/d/e/f/g", "c1//r1"):
        with pytest.raises(ValueError, match=r"."):
            service.refresh_inventory(prefixes=[bad])


def test_partitioned_build_equals_one_partition(env: Env) -> None:
    one = env.service()
    one.get_full_inventory()
    pointer = env.snapshot.parent / "p" / "snapshot.json"
    small = CloudInventoryService(env.raw, env.ml, pointer, env.cache(), part_rows=3)
    small.refresh_inventory()
    assert _state(small) == _state(one)
    pd.testing.assert_frame_equal(one.get_full_inventory().objects, small.get_full_inventory().objects)


def test_old_snapshots_and_unused_segments_are_collected(env: Env) -> None:
    service = env.service()
    for _ in range(4):
        service.refresh_inventory()
    service.refresh_inventory(prefixes=[LB])
    root = env.snapshot.parent
    assert len(list(root.glob("snap-*"))) == 2  # the current one and the one before
    meta = [json.loads((p / "meta.json").read_text()) for p in root.glob("snap-*")]
    referenced = {name for m in meta for name in m["segments"]}
    assert {p.name for p in (root / "segments").glob("*.arrow")} == referenced
    assert not list(root.glob(".*"))


# -- both backends ------------------------------------------------------------------------------


@dataclass
class Buckets:
    """A raw and an ml bucket on one backend, with ways to add and delete raw objects."""

    raw: Bucket
    ml: Bucket
    add: Callable[[str, int], None]
    delete: Callable[[str], None]


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulator)])
def buckets(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Buckets]:
    """Return the standard raw tree (and an empty ml bucket) on a directory or on fake-gcs-server."""
    if request.param == "local":
        env = Env(tmp_path)
        from tests.services.conftest import write_tree

        write_tree(env.raw_root, RAW_TREE)
        yield Buckets(
            env.raw.inner,
            env.ml.inner,
            lambda name, size: env.add_raw(name, size),
            lambda name: env.raw_root.joinpath(*name.split("/")).unlink(),
        )
        return
    raw_gcs, ml_gcs = request.getfixturevalue("gcs"), request.getfixturevalue("fake_gcs").new_bucket()
    raw_gcs.seed({name: b"x" * size for name, size in RAW_TREE.items()})
    raw = open_bucket(f"gs://{raw_gcs.bucket}", retry=FAST_RETRY)
    yield Buckets(
        raw,
        open_bucket(f"gs://{ml_gcs.bucket}", retry=FAST_RETRY),
        lambda name, size: raw_gcs.seed({name: b"x" * size}),
        raw.delete,
    )


def test_subtree_refresh_on_both_backends(buckets: Buckets, tmp_path: Path) -> None:
    cache = FileSystemCache(str(tmp_path / "cache"), default_timeout=0)
    service = CloudInventoryService(buckets.raw, buckets.ml, tmp_path / "inv" / "snapshot.json", cache)
    assert service.get_full_inventory().run_count == 5
    _change_subtree(buckets.add, buckets.delete)
    service.refresh_inventory(prefixes=[LB, NEW_LB])
    full = CloudInventoryService(buckets.raw, buckets.ml, tmp_path / "full" / "snapshot.json", cache)
    full.refresh_inventory()
    assert _state(service) == _state(full)
    assert service.get_raw_bags_info(f"{NEW_LB}/zz-not-a-date").bag_names == ["a.bag"]


# -- workers sharing one snapshot ---------------------------------------------------------------


def _worker(env_root: str, commands: Any, answers: Any) -> None:
    """Serve queries from one service instance, as a gunicorn worker would, until told to stop."""
    env = Env(Path(env_root))
    service = env.service()
    service.load()
    while True:
        command = commands.get()
        if command == "stop":
            return
        if command == "refresh":
            service.refresh_inventory()
            answers.put("refreshed")
        elif command == "cids":
            answers.put(service.get_hierarchy_level("cid"))
        elif command == "maps":
            maps = Path(f"/proc/{os.getpid()}/maps").read_text()
            answers.put(sorted({line.split()[-1] for line in maps.splitlines() if "/segments/seg-" in line}))


def test_two_worker_processes_share_one_snapshot(env: Env) -> None:
    env.service().get_full_inventory()
    mp = multiprocessing.get_context("spawn")
    workers = []
    for _ in range(2):
        commands, answers = mp.Queue(), mp.Queue()
        process = mp.Process(target=_worker, args=(str(env.raw_root.parents[1]), commands, answers), daemon=True)
        process.start()
        workers.append((process, commands, answers))

    def ask(worker: int, command: str) -> Any:
        workers[worker][1].put(command)
        return workers[worker][2].get(timeout=60)

    try:
        assert ask(0, "cids") == ask(1, "cids") == ["c1", "c2"]
        first_maps = ask(0, "maps")
        assert first_maps and first_maps == ask(1, "maps")  # one file, mapped by both: the page cache is shared
        env.add_raw("c3/r1/f1/t1/l1/2024-06-01/new.bag")
        assert ask(0, "refresh") == "refreshed"
        assert ask(1, "cids") == ["c1", "c2", "c3"]  # no restart: the other worker mapped the new snapshot
        assert ask(1, "maps") == ask(0, "maps") != first_maps
    finally:
        for process, commands, _ in workers:
            commands.put("stop")
            process.join(10)
            if process.is_alive():
                process.kill()


# -- crashes ------------------------------------------------------------------------------------


class _DyingBucket:
    """A bucket whose listing kills the process part-way, like an OOM kill or a deploy during a refresh."""

    def __init__(self, inner: Bucket) -> None:
        self.inner = inner
        self.url = inner.url

    def iter_objects(self, prefix: str = "", **kwargs: Any) -> Iterator[ObjectInfo]:
        for count, info in enumerate(self.inner.iter_objects(prefix)):
            if count == 3:
                os._exit(9)
            yield info


def _crashing_refresh(env_root: str) -> None:
    env = Env(Path(env_root))
    CloudInventoryService(_DyingBucket(env.raw.inner), env.ml, env.snapshot, env.cache()).refresh_inventory()


def _dying_build(env_root: str) -> None:
    """Die after the new snapshot is written but before it is published."""
    import src.services.inventory as module

    def die(*_: Any) -> None:
        os._exit(9)

    module.publish = die
    env = Env(Path(env_root))
    env.service().refresh_inventory()


@pytest.mark.parametrize("crash", [_crashing_refresh, _dying_build])
def test_a_crash_during_refresh_leaves_the_previous_snapshot_in_service(env: Env, crash: Callable) -> None:
    service = env.service()
    service.get_full_inventory()
    pointer = env.snapshot.read_bytes()
    env.add_raw("c3/r1/f1/t1/l1/2024-06-01/new.bag")
    process = multiprocessing.get_context("spawn").Process(target=crash, args=(str(env.raw_root.parents[1]),))
    process.start()
    process.join(60)
    assert process.exitcode == 9
    assert env.snapshot.read_bytes() == pointer  # nothing was published
    other = CloudInventoryService(_NoListing(), _NoListing(), env.snapshot, env.cache())
    assert other.get_hierarchy_level("cid") == ["c1", "c2"]  # a new worker loads the previous snapshot
    assert service.get_hierarchy_level("cid") == ["c1", "c2"]
    env.cache().delete(REFRESH_LOCK_KEY)  # the dead process could not release it; its timeout would
    service.refresh_inventory()  # the next refresh succeeds and removes the dead build's leftovers
    assert service.get_hierarchy_level("cid") == ["c1", "c2", "c3"]
    root = env.snapshot.parent
    assert not list(root.glob(".*")) and len(list((root / "segments").glob("*"))) <= 2


class _NoListing:
    url = "none://"

    def iter_objects(self, prefix: str = "", **kwargs: Any) -> None:
        raise AssertionError("the snapshot should have been used")


# -- the refresh process ------------------------------------------------------------------------


def _process_service(env: Env, **kwargs: Any) -> CloudInventoryService:
    process = RefreshProcess(raw_url=f"file://{env.raw_root}", ml_url=f"file://{env.ml_root}", **kwargs)
    return CloudInventoryService(
        _NoListing(), _NoListing(), env.snapshot, env.cache(), refresh_on_query=False, refresh_process=process
    )


def test_refresh_runs_in_a_child_process(env: Env) -> None:
    service = _process_service(env)
    seen: list[tuple[str, int]] = []
    inventory = service.refresh_inventory(progress=lambda message, count: seen.append((message, count)))
    assert inventory.run_count == 7 and service.get_cache_info()["runs"] == 7  # this process never listed
    assert ("listed raw bucket", 14) in seen and seen[-1][0] == "done"
    env.add_raw(f"{RUN_E}/more.bag")
    service.refresh_inventory(prefixes=[RUN_E])
    assert service.get_raw_bags_info(RUN_E).bag_names == ["more.bag"]
    assert read_snapshot(env.snapshot).run_count == 7


def test_a_killed_refresh_process_is_a_recorded_failure(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    service = _process_service(env)
    service.refresh_inventory()
    monkeypatch.setattr(sys, "executable", str(_write_script(env.raw_root.parent / "die.sh", "kill -9 $$")))
    with pytest.raises(RefreshFailed, match="ended with code -9"):
        service.refresh_inventory()
    info = service.get_cache_info()
    assert "ended with code -9" in info["last_error"] and info["runs"] == 7  # still serving the last snapshot


def test_a_listing_failure_in_the_child_keeps_its_kind(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from src.storage import StorageUnavailable
    from tests.support.fake_gcs import free_port

    service = _process_service(env)
    service.refresh_inventory()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    process = RefreshProcess(raw_url="gs://nobody-home", ml_url=f"file://{env.ml_root}", gcs_retry=(1, 0.1, 0.2, 2))
    failing = CloudInventoryService(
        _NoListing(), _NoListing(), env.snapshot, env.cache(), refresh_on_query=False, refresh_process=process
    )
    with pytest.raises(StorageUnavailable, match="raw bucket") as excinfo:
        failing.refresh_inventory()
    assert "\n" not in str(excinfo.value)
    assert failing.get_cache_info()["runs"] == 7


def _write_script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


# -- merging categories -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_inserting_few_categories_matches_sorting_them_all(seed: int) -> None:
    import numpy as np

    from src.services.inventory_store import _insert_order
    from src.services.timestamps import parse_unique_timestamps, timestamp_order

    rng = np.random.default_rng(seed)
    pool = [f"2024-0{m}-1{d}T10-00-00" for m in range(1, 10) for d in range(10)]
    pool += [f"2024{m:02d}1{d}_100000" for m in range(1, 10) for d in range(10)] + [f"name-{i}" for i in range(60)]
    names = np.array(sorted(set(rng.choice(pool, 200))), dtype=object)
    old, extra = names[5:], names[:5]  # extras anywhere in the order, old ones as stored
    for times in (None, parse_unique_timestamps):
        if times is None:
            old_sorted = old[np.argsort(old, kind="stable")]
            expected = np.concatenate([old_sorted, extra])[np.argsort(np.concatenate([old_sorted, extra]))]
            got = np.concatenate([old_sorted, extra])[_insert_order(old_sorted, extra, None, None)]
        else:
            old_sorted = old[timestamp_order(old, times(old))]
            both = np.concatenate([old_sorted, extra])
            expected = both[timestamp_order(both, times(both))]
            got = both[_insert_order(old_sorted, extra, times(old_sorted), times(extra))]
        assert got.tolist() == expected.tolist()
