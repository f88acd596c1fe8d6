"""Raw download: verified, parallel, atomic per file, resumable, conflict-aware, fenced in data_root."""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path

import pytest

from src.demo.generate import DemoSummary
from src.jobs.base import JobCancelled, JobError
from src.models import ProcessingStatus
from src.storage import ObjectNotFound, StoragePermissionDenied, StorageUnavailable
from tests.operations.helpers import (
    MIB,
    RUN,
    CorruptingBucket,
    FailingBucket,
    RecordingContext,
    World,
    coordinates,
    crc32c_of,
    part_files,
    random_bytes,
    run_files,
    tree_files,
)

BIG = {f"{RUN}/bag_{i}.bag": random_bytes(2 * MIB, i) for i in range(4)}


def _seed_big(world: World) -> dict[str, bytes]:
    """Seed one run of four 2 MiB bags and refresh the inventory; return name -> bytes relative to the run."""
    world.seed_raw(BIG)
    world.refresh()
    return {name.removeprefix(RUN + "/"): data for name, data in BIG.items()}


def _assert_no_partial_final_files(world: World, expected: dict[str, bytes]) -> None:
    """Every final-named file is complete and correct; local state counts only those."""
    local = {name: data for name, data in run_files(world).items() if not name.rsplit("/", 1)[-1].startswith(".")}
    for name, data in local.items():
        assert crc32c_of(data) == crc32c_of(expected[name]), f"{name} carries a final name but is partial"
    status = world.local.check_raw_downloaded(RUN)
    assert status.bag_count == len([n for n in local if n.endswith(".bag")])


def _split_ros2_run(world: World) -> str:
    """Return a demo run with a ROS2 bag folder split into several storage files."""
    for coord in coordinates(world.inventory.get_runs()):
        names = [o.name for o in world.inventory.get_raw_objects(coord)]
        if any(n.endswith("metadata.yaml") for n in names) and world.inventory.get_raw_bags_info(coord).bag_count > 1:
            return coord
    raise AssertionError("the demo has no split ROS2 run")


def test_download_of_a_demo_run_is_verified_and_complete(world: World, demo: DemoSummary) -> None:
    ros2 = _split_ros2_run(world)
    objects = {o.name.removeprefix(ros2 + "/"): o for o in world.inventory.get_raw_objects(ros2)}
    assert any(name.endswith("metadata.yaml") for name in objects)
    ctx = RecordingContext()

    job = world.ops().execute_raw_download(ros2, ctx=ctx)

    local = run_files(world, ros2)
    assert set(local) == set(objects)  # in-flight objects are never downloaded
    for name, data in local.items():
        assert data == world.read_raw(f"{ros2}/{name}")
    assert job.status is ProcessingStatus.COMPLETE and job.error_message is None
    assert job.files_downloaded == job.total_files == len(objects)
    assert job.bytes_downloaded == job.total_bytes == sum(o.size for o in objects.values())
    assert sorted(job.files_to_download) == sorted(objects)
    assert job.target_path == world.data_root / "raw" / ros2 and job.job_id == "job-test"
    assert ctx.last("files_done") == len(objects) and ctx.last("bytes_total") == job.total_bytes
    assert world.local.check_raw_downloaded(ros2).bag_count == world.inventory.get_raw_bags_info(ros2).bag_count
    json.dumps(job.to_dict())

    again = world.ops().plan_raw_download(ros2)
    assert again.counts == {"skip": len(objects)} and again.bytes_to_transfer == 0


def test_plan_is_a_dry_run_and_serialisable(world: World) -> None:
    expected = _seed_big(world)

    plan = world.ops().plan_raw_download(RUN)

    assert [f.name for f in plan.files] == sorted(expected)
    assert {f.action for f in plan.files} == {"download"}
    assert plan.bytes_to_transfer == plan.total_bytes == 8 * MIB
    assert not (world.data_root / "raw").exists()
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["coordinate"]["timestamp"] == "2024-05-14T10-32-00" and data["counts"] == {"download": 4}


def test_rerun_after_a_download_fetches_nothing(world: World) -> None:
    _seed_big(world)
    world.ops().execute_raw_download(RUN)
    if world.stack is not None:
        world.proxy.reset()

    job = world.ops().execute_raw_download(RUN)

    assert job.total_files == 0 and job.files_to_download == []
    if world.stack is not None:
        assert world.media_names() == []


@pytest.mark.parametrize("workers", [1, 4])
def test_crash_mid_file_leaves_no_partial_final_file_and_rerun_fetches_only_the_rest(
    world: World, workers: int
) -> None:
    expected = _seed_big(world)
    # 3 MiB reported: with one worker that is halfway through the second file.
    crash = RecordingContext(crash_at_bytes=3 * MIB)

    with pytest.raises(RuntimeError, match="simulated crash"):
        world.ops(max_workers=workers).execute_raw_download(RUN, ctx=crash)

    _assert_no_partial_final_files(world, expected)
    done_before = set(run_files(world))
    assert len(done_before) < len(expected)
    if workers == 1:
        assert done_before == {"bag_0.bag"}
    # A hard crash (kill -9) would leave its temp file behind: local state must not count it.
    leftover = world.data_root / "raw" / RUN / ".bag_1.bag.deadbeef.part"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half a bag")
    assert world.local.check_raw_downloaded(RUN).bag_count == len(done_before)
    if world.stack is not None:
        world.proxy.reset()

    job = world.ops(max_workers=workers).execute_raw_download(RUN)

    assert sorted(job.files_to_download) == sorted(set(expected) - done_before)
    assert run_files(world) == expected  # the leftover .part is gone too
    if world.stack is not None:
        assert sorted(world.media_names()) == sorted(f"raw/{RUN}/{name}" for name in job.files_to_download)


def test_cancel_between_files_leaves_only_complete_files(world: World) -> None:
    expected = _seed_big(world)
    ctx = RecordingContext(cancel_after_checks=1)

    with pytest.raises(JobCancelled):
        world.ops(max_workers=1).execute_raw_download(RUN, ctx=ctx)

    _assert_no_partial_final_files(world, expected)
    assert part_files(world.data_root) == []


def test_conflicts_are_kept_with_skip_and_replaced_with_overwrite(world: World) -> None:
    expected = _seed_big(world)
    world.ops().execute_raw_download(RUN)
    run_dir = world.data_root / "raw" / RUN
    corrupted = bytearray(expected["bag_1.bag"])
    corrupted[1000] ^= 0xFF  # same size, different content: only a checksum notices
    (run_dir / "bag_1.bag").write_bytes(bytes(corrupted))
    (run_dir / "bag_2.bag").write_bytes(b"short")
    (run_dir / "bag_3.bag").unlink()

    plan = world.ops().plan_raw_download(RUN)
    assert {f.name: f.action for f in plan.files} == {
        "bag_0.bag": "skip",
        "bag_1.bag": "conflict",
        "bag_2.bag": "conflict",
        "bag_3.bag": "download",
    }
    job = world.ops().execute_raw_download(RUN, "skip")
    assert job.files_to_download == ["bag_3.bag"]
    assert "bag_1.bag" in (job.error_message or "") and "bag_2.bag" in (job.error_message or "")
    assert (run_dir / "bag_1.bag").read_bytes() == bytes(corrupted)
    assert (run_dir / "bag_2.bag").read_bytes() == b"short"

    plan = world.ops().plan_raw_download(RUN, "overwrite")
    assert plan.counts == {"skip": 2, "overwrite": 2}
    job = world.ops().execute_raw_download(RUN, "overwrite")
    assert sorted(job.files_to_download) == ["bag_1.bag", "bag_2.bag"] and job.error_message is None
    assert run_files(world) == expected


def test_a_directory_in_the_way_is_a_conflict_even_with_overwrite(local_world: World) -> None:
    _seed_big(local_world)
    (local_world.data_root / "raw" / RUN / "bag_0.bag").mkdir(parents=True)

    plan = local_world.ops().plan_raw_download(RUN, "overwrite")

    assert {f.name: f.action for f in plan.files}["bag_0.bag"] == "conflict"


def test_checksum_mismatch_is_retried_once(world: World) -> None:
    expected = _seed_big(world)
    name = f"{RUN}/bag_2.bag"
    flaky = CorruptingBucket(world.raw, {name}, times=1)
    ops = world.ops()
    ops.raw_bucket = flaky
    ctx = RecordingContext()

    ops.execute_raw_download(RUN, ctx=ctx)

    assert flaky.downloads.count(name) == 2
    assert any("checksum mismatch" in line and "bag_2.bag" in line for line in ctx.lines)
    assert run_files(world) == expected
    assert ctx.last("bytes_done") == 8 * MIB  # the failed attempt's bytes were taken back


def test_checksum_mismatch_twice_fails_naming_the_file(world: World) -> None:
    expected = _seed_big(world)
    name = f"{RUN}/bag_2.bag"
    ops = world.ops()
    ops.raw_bucket = CorruptingBucket(world.raw, {name}, times=2)

    with pytest.raises(JobError, match=r"checksum mismatch for .*bag_2\.bag"):
        ops.execute_raw_download(RUN)

    assert "bag_2.bag" not in run_files(world)
    _assert_no_partial_final_files(world, expected)
    assert part_files(world.data_root) == []


@pytest.mark.emulator
def test_gcs_crc32c_failure_fails_after_one_retry(gcs_world: World) -> None:
    gcs_world.seed_raw({f"{RUN}/a.bag": b"good bytes"})
    gcs_world.refresh()
    gcs_world.proxy.corrupt_next(10, match=lambda r: r.is_media)  # damaged in transit, every time

    with pytest.raises(JobError, match=r"a\.bag"):
        gcs_world.ops().execute_raw_download(RUN)

    assert gcs_world.media_names().count(f"raw/{RUN}/a.bag") == 2
    assert tree_files(gcs_world.data_root / "raw") == {}


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (StoragePermissionDenied("permission denied: may not read"), r"^permission denied on the raw bucket file://"),
        (ObjectNotFound("bag_0.bag not found"), r"^not found in the raw bucket .*refresh the inventory"),
        (StorageUnavailable("connection reset"), r"^the raw bucket .* is unavailable"),
    ],
)
def test_storage_errors_become_one_line_job_errors(local_world: World, error: Exception, message: str) -> None:
    _seed_big(local_world)
    ops = local_world.ops()
    ops.raw_bucket = FailingBucket(local_world.raw, error)

    with pytest.raises(JobError, match=message) as info:
        ops.execute_raw_download(RUN)

    assert "\n" not in str(info.value)
    assert not (local_world.data_root / "raw" / RUN).exists()  # a failed first download leaves no trace


@pytest.mark.emulator
def test_gcs_permission_denied_is_one_line_naming_the_object_and_not_retried(gcs_world: World) -> None:
    _seed_big(gcs_world)
    gcs_world.proxy.reset()
    gcs_world.proxy.fail_next(100, 403, match=lambda r: r.is_media)

    with pytest.raises(JobError) as info:
        gcs_world.ops().execute_raw_download(RUN)

    message = str(info.value)
    assert re.match(rf"^permission denied on the raw bucket gs://{gcs_world.stack.bucket}/raw", message)
    assert re.search(rf"{RUN}/bag_\d\.bag", message) and "\n" not in message
    paths = [r.path for r in gcs_world.proxy.media_requests()]
    assert paths and len(paths) == len(set(paths)), "a 403 is not retried"


@pytest.mark.emulator
def test_gcs_object_gone_since_the_listing_is_one_line_naming_it(gcs_world: World) -> None:
    gcs_world.seed_raw({f"{RUN}/a.bag": b"listed, then deleted"})
    gcs_world.refresh()
    gcs_world.raw.delete(f"{RUN}/a.bag")
    gcs_world.proxy.reset()

    with pytest.raises(JobError, match=rf"^not found in the raw bucket .*{RUN}/a\.bag.*refresh the inventory"):
        gcs_world.ops().execute_raw_download(RUN)

    assert len(gcs_world.proxy.media_requests()) == 1, "a 404 is not retried"


def test_nothing_is_written_outside_the_data_root(local_world: World, tmp_path: Path) -> None:
    _seed_big(local_world)
    outside = tmp_path / "outside"
    outside.mkdir()
    raw_root = local_world.data_root / "raw"
    raw_root.mkdir()
    (raw_root / "c1").symlink_to(outside, target_is_directory=True)

    with pytest.raises(JobError, match="outside the data root"):
        local_world.ops().plan_raw_download(RUN)
    with pytest.raises(JobError, match="outside the data root"):
        local_world.ops().execute_raw_download(RUN)

    assert list(outside.iterdir()) == []


def test_a_second_download_of_the_same_run_is_refused(local_world: World) -> None:
    _seed_big(local_world)
    target = local_world.data_root / "raw" / RUN
    target.mkdir(parents=True)
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(JobError, match="another download"):
            local_world.ops().execute_raw_download(RUN)
    finally:
        os.close(fd)
    assert target.is_dir()  # the running download's directory is left alone


@pytest.mark.parametrize(
    ("coord", "policy", "message"),
    [
        ("c1/r1/../t1/l1/ts", "skip", "invalid coordinate"),
        ("c1/r1", "skip", "invalid coordinate"),
        (RUN, "merge", "unknown conflict resolution"),
        ("c9/r1/f1/t1/l1/none", "skip", "no raw objects"),
    ],
)
def test_bad_input_is_refused(local_world: World, coord: str, policy: str, message: str) -> None:
    _seed_big(local_world)

    with pytest.raises(JobError, match=message):
        local_world.ops().execute_raw_download(coord, policy)

    assert tree_files(local_world.data_root) == {}
