"""Dataset fetch: manifest matches the files, deterministic split, never merged, built atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.demo.generate import DemoSummary
from src.jobs.base import JobCancelled, JobError
from src.services.operations import split_of
from tests.operations.helpers import (
    CorruptingBucket,
    RecordingContext,
    World,
    coordinates,
    crc32c_of,
    tree_files,
)


def _datasets(world: World) -> Path:
    return world.data_root / "ml" / "datasets"


def _synthetic_ml(world: World, runs: int = 4, samples: int = 100) -> None:
    """Seed runs of tiny images with .json sidecars (plus noise) and one raw bag per run."""
    ml: dict[str, bytes] = {}
    raw: dict[str, bytes] = {}
    for r in range(runs):
        run = f"c1/r1/f1/t1/l1/2024-05-{10 + r:02d}"
        raw[f"{run}/a.bag"] = b"bag"
        for s in range(samples // runs):
            ml[f"{run}/cam/frame_{s:04d}.png"] = f"png {run} {s}".encode()
            ml[f"{run}/cam/frame_{s:04d}.json"] = f'{{"run": "{run}", "s": {s}}}'.encode()
        ml[f"{run}/notes.md"] = b"not a sample"  # neither a sample nor a label
        ml[f"{run}/cam/upload.png.tmp"] = b"in flight"
    ml["c2/r1/f1/t1/l1/2024-01-01/x.png"] = b"outside the selection"
    world.seed_ml(ml)
    world.seed_raw(raw)
    world.refresh()


def test_manifest_matches_the_fetched_files(world: World, demo: DemoSummary) -> None:
    ctx = RecordingContext()
    plan = world.ops().plan_dataset_fetch("acme-v1", {"cid": "acme"}, split=0.8)
    json.dumps(plan.to_dict())

    result = world.ops().execute_dataset_fetch("acme-v1", {"cid": "acme"}, split=0.8, created_by="alice", ctx=ctx)

    manifest = json.loads(result.manifest_path.read_text())
    on_disk = tree_files(result.path)
    del on_disk["manifest.json"]
    files = [f for run in manifest["runs"] for f in run["files"]]
    assert sorted(f["path"] for f in files) == sorted(on_disk)
    for entry in files:
        data = on_disk[entry["path"]]
        assert entry["size"] == len(data) and entry["crc32c"] == crc32c_of(data)
        source = entry["path"].removeprefix("samples/")
        assert world.read_ml(source) == data
    assert manifest["name"] == "acme-v1" and manifest["created_by"] == "alice"
    assert manifest["filters"] == {"cid": "acme"} and manifest["split"]["train_fraction"] == 0.8
    totals = manifest["totals"]
    assert totals["files"] == len(files) == result.files == ctx.last("files_done")
    assert totals["samples"] == result.samples == sum(f["kind"] == "sample" for f in files)
    assert totals["labels"] == result.labels == sum(f["kind"] == "label" for f in files)
    # Per run: counts agree with the inventory, coverage with bags x 17.
    acme_runs = coordinates(world.inventory.get_runs({"cid": "acme"}))
    assert [run["coordinate"] for run in manifest["runs"]] == sorted(acme_runs)
    for run in manifest["runs"]:
        info = world.inventory.get_ml_samples_info(run["coordinate"])
        bags = world.inventory.get_raw_bags_info(run["coordinate"]).bag_count
        assert run["samples"] == info["sample_count"] and run["labels"] == info["label_count"]
        assert run["bags"] == bags and run["expected_samples"] == bags * 17
        expected_pct = round(run["samples"] / (bags * 17) * 100, 2) if bags else None
        assert run["coverage_pct"] == expected_pct
    # Labels follow their image into the same split.
    split = {f["path"]: f["split"] for f in files}
    for entry in files:
        if entry["kind"] == "label":
            assert entry["split"] == split[entry["sample"]]
    assert result.split_counts == manifest["split"]["counts"]
    assert sorted(p.name for p in _datasets(world).iterdir()) == ["acme-v1"]  # no temp dir left


def test_split_is_deterministic_across_datasets_and_respects_the_fraction(local_world: World) -> None:
    _synthetic_ml(local_world, runs=2, samples=200)
    ops = local_world.ops()

    first = ops.execute_dataset_fetch("a", {"cid": "c1"}, split=0.7)
    second = ops.execute_dataset_fetch("b", {"cid": "c1", "regionid": "r1"}, split=0.7)

    def splits(result) -> dict[str, str]:
        manifest = json.loads(result.manifest_path.read_text())
        return {f["path"]: f["split"] for run in manifest["runs"] for f in run["files"]}

    assert splits(first) == splits(second)
    train = first.split_counts["train"]
    assert first.samples == 200 and 0.6 < train / 200 < 0.8
    assert first.labels == 200  # notes.md, in-flight files and other cids are left out
    assert split_of("c1/r1/f1/t1/l1/2024-05-10/cam/frame_0000.png", 0.7) in ("train", "val")
    assert json.loads(first.manifest_path.read_text())["totals"]["runs"] == 2


def test_without_a_split_files_have_none(local_world: World) -> None:
    _synthetic_ml(local_world, runs=1, samples=4)

    result = local_world.ops().execute_dataset_fetch("plain", {"cid": "c1"})

    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["split"] is None and result.split_counts == {}
    assert {f["split"] for run in manifest["runs"] for f in run["files"]} == {None}


def test_an_existing_dataset_is_refused(local_world: World) -> None:
    _synthetic_ml(local_world, runs=1, samples=4)
    ops = local_world.ops()
    first = ops.execute_dataset_fetch("v1", {"cid": "c1"})
    before = tree_files(first.path)

    with pytest.raises(JobError, match="already exists"):
        ops.plan_dataset_fetch("v1", {"cid": "c1"})
    with pytest.raises(JobError, match="already exists"):
        ops.execute_dataset_fetch("v1", {"cid": "c1"})

    assert tree_files(first.path) == before


@pytest.mark.parametrize("name", ["..", "a/b", "", ".hidden", "x" * 65, "a b", "-x", "a\\b", "ok\n"])
def test_bad_dataset_names_are_refused(local_world: World, name: str) -> None:
    _synthetic_ml(local_world, runs=1, samples=4)

    with pytest.raises(JobError, match="invalid dataset name"):
        local_world.ops().plan_dataset_fetch(name, {"cid": "c1"})
    with pytest.raises(JobError, match="invalid dataset name"):
        local_world.ops().execute_dataset_fetch(name, {"cid": "c1"})

    assert not _datasets(local_world).exists()


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"regionid": "r1"}, "prefix"),
        ({"cid": "c1", "fieldid": "f1"}, "prefix"),
        ({"cid": "c1", "camera": "x"}, "unknown filter"),
        ({"cid": ".."}, "invalid filter"),
    ],
)
def test_bad_filters_are_refused(local_world: World, filters: dict[str, str], message: str) -> None:
    with pytest.raises(JobError, match=message):
        local_world.ops().plan_dataset_fetch("ds", filters)


def test_a_failed_fetch_leaves_nothing_that_looks_like_a_dataset(world: World) -> None:
    _synthetic_ml(world, runs=2, samples=20)
    ops = world.ops()
    ops.ml_bucket = CorruptingBucket(world.ml, {"c1/r1/f1/t1/l1/2024-05-11/cam/frame_0003.png"}, times=2)

    with pytest.raises(JobError, match=r"frame_0003\.png"):
        ops.execute_dataset_fetch("broken", {"cid": "c1"})

    assert list(_datasets(world).iterdir()) == []


def test_a_cancelled_fetch_leaves_nothing(world: World) -> None:
    _synthetic_ml(world, runs=2, samples=20)

    with pytest.raises(JobCancelled):
        world.ops(max_workers=2).execute_dataset_fetch("c", {"cid": "c1"}, ctx=RecordingContext(cancel_after_checks=5))

    assert list(_datasets(world).iterdir()) == []


def test_an_empty_selection_is_refused(local_world: World) -> None:
    _synthetic_ml(local_world, runs=1, samples=4)

    with pytest.raises(JobError, match="no samples"):
        local_world.ops().execute_dataset_fetch("empty", {"cid": "c9"})


def test_stale_build_directories_are_cleared(local_world: World) -> None:
    _synthetic_ml(local_world, runs=1, samples=4)
    stale = _datasets(local_world) / ".ds.tmp-dead0000"
    (stale / "samples").mkdir(parents=True)
    (stale / "samples" / "junk.png").write_bytes(b"junk")

    local_world.ops().execute_dataset_fetch("ds", {"cid": "c1"})

    assert sorted(p.name for p in _datasets(local_world).iterdir()) == ["ds"]


def test_a_symlinked_datasets_directory_is_refused(local_world: World, tmp_path: Path) -> None:
    _synthetic_ml(local_world, runs=1, samples=4)
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_world.data_root / "ml").mkdir(parents=True, exist_ok=True)
    _datasets(local_world).symlink_to(outside, target_is_directory=True)

    with pytest.raises(JobError, match="outside the data root"):
        local_world.ops().execute_dataset_fetch("ds", {"cid": "c1"})

    assert list(outside.iterdir()) == []
