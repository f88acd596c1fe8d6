"""ML upload: never overwrites without consent, treats identical 412s as done, tracks atomically."""

from __future__ import annotations

import json
import threading

import pytest

from src.demo.generate import DemoSummary
from src.jobs.base import JobError
from src.services.operations import upload as upload_module
from tests.operations.helpers import RecordingContext, StaleListingBucket, World, tree_files

OTHER = {
    "export-other": {
        "coordinates": [],
        "created_at": "2024-01-01T00:00:00Z",
        "sample_count": 3,
        "source": "someone else",
        "uploaded": False,
        "uploaded_at": None,
    }
}


def _export_files(world: World, export_id: str) -> dict[str, bytes]:
    """Return the export's files keyed by their object name."""
    return tree_files(world.data_root / "ml" / "exports" / export_id)


def _tracking(world: World) -> dict:
    return json.loads((world.data_root / "ml" / ".export_tracking.json").read_text())


def _add_other_export(world: World) -> None:
    """Record a second export that the upload must leave exactly as it is."""
    path = world.data_root / "ml" / ".export_tracking.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **OTHER}, indent=2))


@pytest.fixture
def small_export(world: World) -> str:
    """Write a tracked export of two runs with three labelled samples each; return its id."""
    export_id = "export-small"
    root = world.data_root / "ml" / "exports" / export_id
    runs = ["c1/r1/f1/t1/l1/2024-05-14T10-32-00", "c1/r1/f1/t1/l1/2024-05-15T08-00-00"]
    for run in runs:
        for i in range(3):
            (root / run / "cam").mkdir(parents=True, exist_ok=True)
            (root / run / "cam" / f"f{i}.png").write_bytes(f"png {run} {i}".encode())
            (root / run / "cam" / f"f{i}.json").write_text(f'{{"i": {i}}}')
    entry = {"coordinates": runs, "created_at": None, "sample_count": 6, "source": "test"}
    tracking = {export_id: {**entry, "uploaded": False, "uploaded_at": None}, **OTHER}
    (world.data_root / "ml" / ".export_tracking.json").write_text(json.dumps(tracking))
    return export_id


def test_upload_sends_every_file_without_overwriting_and_marks_the_export(world: World, demo: DemoSummary) -> None:
    export = demo.export_id
    files = _export_files(world, export)
    _add_other_export(world)
    ctx = RecordingContext()

    plan = world.ops().plan_ml_upload(export)
    assert plan.counts == {"upload": len(files)} and plan.unmapped == []
    json.dumps(plan.to_dict())
    result = world.ops().execute_ml_upload(export, ctx=ctx)

    assert result.uploaded and result.tracking_updated and result.conflicts == []
    assert result.files_uploaded == len(files) and result.bytes_uploaded == sum(map(len, files.values()))
    for name, data in files.items():
        assert world.read_ml(name) == data
    tracking = _tracking(world)
    assert tracking[export]["uploaded"] is True and tracking[export]["uploaded_at"] == result.uploaded_at
    assert tracking[export]["sample_count"] == demo.export_samples  # the rest of the entry is kept
    assert tracking["export-other"] == OTHER["export-other"]
    assert world.local.get_export_info(export)["uploaded"] is True
    # The upload re-listed the runs it wrote and merged them in: fresh data, nothing marked stale.
    assert world.inventory.get_cache_info()["stale_reason"] is None
    for name in files:
        run, rel = "/".join(name.split("/")[:6]), name.split("/", 6)[6]
        if rel.lower().endswith((".png", ".jpg", ".jpeg")):
            assert rel in world.inventory.get_ml_samples_info(run)["sample_names"]
    assert ctx.last("files_done") == len(files)
    assert [p.name for p in (world.data_root / "ml").iterdir() if p.name.endswith(".tmp")] == []
    if world.stack is not None:
        uploads = world.proxy.upload_requests()
        assert len(uploads) == len(files)
        assert {r.param("ifGenerationMatch") for r in uploads} == {"0"}


def test_upload_marks_stale_while_another_refresh_runs(world: World, small_export: str) -> None:
    from src.services.inventory import REFRESH_LOCK_KEY

    world.inventory._shared.set(REFRESH_LOCK_KEY, "another-worker", timeout=0)
    world.ops().execute_ml_upload(small_export)
    # That refresh may have listed before these files landed: the next one must list again.
    assert world.inventory.get_cache_info()["stale_reason"] == f"ml upload {small_export}"


def test_a_second_upload_finds_everything_identical(world: World, small_export: str) -> None:
    world.ops().execute_ml_upload(small_export)
    if world.stack is not None:
        world.proxy.reset()

    result = world.ops().execute_ml_upload(small_export)

    assert result.files_uploaded == 0 and result.files_identical == len(_export_files(world, small_export))
    assert result.uploaded
    if world.stack is not None:
        assert world.proxy.upload_requests() == []


def test_412_with_identical_content_counts_as_uploaded(world: World, small_export: str) -> None:
    export = small_export
    files = _export_files(world, export)
    first = sorted(files)[0]
    world.seed_ml({first: files[first]})  # e.g. our own upload whose reply got lost
    ops = world.ops()
    ops.ml_bucket = StaleListingBucket(world.ml)  # the plan cannot see it: the upload meets a 412

    result = ops.execute_ml_upload(export)

    assert result.files_identical == 1 and result.files_uploaded == len(files) - 1
    assert result.uploaded and _tracking(world)[export]["uploaded"] is True
    if world.stack is not None:
        refused = [r for r in world.proxy.upload_requests() if r.status == 412]
        assert len(refused) == 1


def test_412_with_different_content_is_a_conflict_and_the_remote_is_untouched(world: World, small_export: str) -> None:
    export = small_export
    first = sorted(_export_files(world, export))[0]
    world.seed_ml({first: b"someone else's label"})
    ops = world.ops()
    ops.ml_bucket = StaleListingBucket(world.ml)

    result = ops.execute_ml_upload(export)

    assert [c.name for c in result.conflicts] == [first] and result.conflicts[0].action == "conflict"
    assert world.read_ml(first) == b"someone else's label"
    assert not result.uploaded and _tracking(world)[export]["uploaded"] is False
    # The others went up, and the inventory re-listed their runs (the conflicting name too: it is in the bucket).
    assert world.inventory.get_coordinate_cloud_state("/".join(first.split("/")[:6]))["in_ml"]
    assert world.inventory.get_cache_info()["stale_reason"] is None


def test_visible_conflicts_need_overwrite(world: World, small_export: str) -> None:
    export = small_export
    files = _export_files(world, export)
    first = sorted(files)[0]
    world.seed_ml({first: b"different"})

    plan = world.ops().plan_ml_upload(export)
    assert {f.name: f.action for f in plan.files}[first] == "conflict"
    result = world.ops().execute_ml_upload(export, "skip")
    assert [c.name for c in result.conflicts] == [first] and world.read_ml(first) == b"different"
    assert not result.uploaded
    if world.stack is not None:
        world.proxy.reset()

    plan = world.ops().plan_ml_upload(export, "overwrite")
    assert plan.counts == {"overwrite": 1, "skip": len(files) - 1}
    result = world.ops().execute_ml_upload(export, "overwrite")
    assert result.uploaded and result.files_uploaded == 1 and world.read_ml(first) == files[first]
    if world.stack is not None:
        (request,) = world.proxy.upload_requests()
        assert request.param("ifGenerationMatch") is None  # consent given: a plain overwrite


def test_files_outside_a_run_are_reported_and_block_the_uploaded_mark(local_world: World) -> None:
    export_dir = local_world.data_root / "ml" / "exports" / "exp-1"
    (export_dir / "c1/r1/f1/t1/l1/ts").mkdir(parents=True)
    (export_dir / "c1/r1/f1/t1/l1/ts/a.png").write_bytes(b"png")
    (export_dir / "README.txt").write_text("notes")
    (export_dir / "c1/r1/f1/t1/l1/ts/.a.png.partial").write_bytes(b"half")  # in flight: ignored

    plan = local_world.ops().plan_ml_upload("exp-1")
    result = local_world.ops().execute_ml_upload("exp-1")

    assert plan.unmapped == ["README.txt"] and plan.counts == {"upload": 1, "skip": 1}
    assert result.files_uploaded == 1 and not result.uploaded
    assert not (local_world.data_root / "ml" / ".export_tracking.json").exists()


def test_an_untracked_export_gets_a_tracking_entry(local_world: World) -> None:
    export_dir = local_world.data_root / "ml" / "exports" / "exp-2" / "c1/r1/f1/t1/l1/ts"
    export_dir.mkdir(parents=True)
    (export_dir / "a.png").write_bytes(b"png")
    (export_dir / "a.json").write_text("{}")

    local_world.ops().execute_ml_upload("exp-2")

    entry = _tracking(local_world)["exp-2"]
    assert entry["uploaded"] is True and entry["coordinates"] == ["c1/r1/f1/t1/l1/ts"] and entry["sample_count"] == 1


def test_a_corrupt_tracking_file_stops_the_upload_naming_the_file(world: World, small_export: str) -> None:
    (world.data_root / "ml" / ".export_tracking.json").write_text("{not json")
    before = sorted(o.name for o in world.ml.iter_objects(""))

    with pytest.raises(JobError, match=r"\.export_tracking\.json is corrupt"):
        world.ops().execute_ml_upload(small_export)

    assert sorted(o.name for o in world.ml.iter_objects("")) == before
    if world.stack is not None:
        assert world.proxy.upload_requests() == []


@pytest.mark.parametrize("export_id", ["..", "a/b", "", "x\x00y"])
def test_bad_export_ids_are_refused(local_world: World, export_id: str) -> None:
    with pytest.raises(JobError, match="invalid export id"):
        local_world.ops().plan_ml_upload(export_id)
    with pytest.raises(JobError, match="invalid export id"):
        local_world.ops().execute_ml_upload(export_id)


def test_a_missing_export_is_refused(local_world: World) -> None:
    with pytest.raises(JobError, match="has no directory"):
        local_world.ops().execute_ml_upload("nope")


def test_tracking_write_is_atomic(local_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    path = local_world.data_root / "ml" / ".export_tracking.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(OTHER))
    before = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("src.services.operations.files.os.fsync", broken_fsync)
    with pytest.raises(JobError, match="No space left"):
        upload_module.mark_uploaded(path, "exp", {"coordinates": []}, "2024-01-01T00:00:00Z")

    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [".export_tracking.json", ".export_tracking.json.lock"]


def test_concurrent_tracking_updates_keep_every_export(local_world: World) -> None:
    path = local_world.data_root / "ml" / ".export_tracking.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(OTHER))
    ids = [f"exp-{i}" for i in range(12)]
    barrier = threading.Barrier(len(ids))

    def mark(export_id: str) -> None:
        barrier.wait()
        upload_module.mark_uploaded(path, export_id, {"coordinates": []}, "2024-01-01T00:00:00Z")

    threads = [threading.Thread(target=mark, args=(export_id,)) for export_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    tracking = json.loads(path.read_text())
    assert sorted(tracking) == sorted([*ids, "export-other"])
    assert all(tracking[i]["uploaded"] for i in ids) and tracking["export-other"] == OTHER["export-other"]
