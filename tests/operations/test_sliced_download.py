"""Large objects come as concurrent ranged slices into one .part file, verified whole before the rename."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from src.jobs.base import JobCancelled, JobError
from src.services.operations.transfer import SlicePolicy
from tests.operations.helpers import (
    MIB,
    RUN,
    RecordingContext,
    World,
    WrappedBucket,
    crc32c_of,
    part_files,
    random_bytes,
    run_files,
)

SLICING = SlicePolicy(threshold=2 * MIB, slice_size=MIB // 2, workers=3)
BIG = random_bytes(5 * MIB + 123, 42)  # 11 slices, the last one short
SMALL = random_bytes(MIB, 43)  # below the threshold: one stream


def seed(world: World) -> None:
    """Seed a run with one large and one small bag and build the inventory."""
    world.seed_raw({f"{RUN}/big.bag": BIG, f"{RUN}/small.bag": SMALL})
    world.refresh()


def test_a_large_object_is_fetched_in_slices_and_verified(world: World) -> None:
    seed(world)
    ctx = RecordingContext()

    job = world.ops(slicing=SLICING).execute_raw_download(RUN, ctx=ctx)

    assert run_files(world) == {"big.bag": BIG, "small.bag": SMALL}
    assert job.bytes_downloaded == len(BIG) + len(SMALL) == ctx.last("bytes_done")
    done = [u["bytes_done"] for u in ctx.updates if u.get("bytes_done")]
    assert len(done) >= 11 and done == sorted(done), "progress moves within the large file, slice by slice"
    assert part_files(world.data_root) == []
    if world.kind == "gcs":
        ranges = [r.headers.get("range") for r in world.proxy.media_requests() if "big.bag" in r.path]
        starts = sorted(int(value.removeprefix("bytes=").split("-")[0]) for value in ranges)
        assert starts == list(range(0, len(BIG), MIB // 2)), "one ranged request per slice, each once"
        whole = [r for r in world.proxy.media_requests() if "small.bag" in r.path]
        assert [r.headers.get("range") for r in whole] == [None], "a small object is one stream"


def test_slices_run_concurrently(world: World) -> None:
    seed(world)
    slicing = SlicePolicy(threshold=2 * MIB, slice_size=MIB, workers=3)
    bucket = ConcurrencyProbe(world.raw, together=3)  # 6 slices: each waits until three are in flight
    ops = world.ops(slicing=slicing)
    ops.raw_bucket = bucket

    ops.execute_raw_download(RUN)

    assert bucket.most == 3
    assert run_files(world)["big.bag"] == BIG


@pytest.mark.emulator
def test_a_connection_dropped_mid_slice_resumes_and_the_file_is_whole(gcs_world: World) -> None:
    seed(gcs_world)
    gcs_world.proxy.drop_next(2, after_bytes=100_000, match=lambda r: "big.bag" in r.path)

    gcs_world.ops(slicing=SLICING).execute_raw_download(RUN)

    assert run_files(gcs_world)["big.bag"] == BIG
    ranges = [r.headers.get("range") for r in gcs_world.proxy.media_requests() if "big.bag" in r.path]
    assert len(ranges) == 11 + 2, "the two cut slices resumed from where they stopped"


def test_a_damaged_slice_fails_the_whole_file_check_and_is_fetched_again(world: World) -> None:
    seed(world)
    ops = world.ops(slicing=SLICING)
    ops.raw_bucket = DamagingBucket(world.raw, times=1)
    ctx = RecordingContext()

    ops.execute_raw_download(RUN, ctx=ctx)

    assert run_files(world)["big.bag"] == BIG
    assert any("checksum mismatch" in line and "big.bag" in line for line in ctx.lines)
    assert ctx.last("bytes_done") == len(BIG) + len(SMALL), "the failed attempt's bytes were taken back"


def test_a_slice_damaged_every_time_fails_naming_the_file(world: World) -> None:
    seed(world)
    ops = world.ops(slicing=SLICING)
    ops.raw_bucket = DamagingBucket(world.raw, times=99)

    with pytest.raises(JobError, match=rf"checksum mismatch for {RUN}/big\.bag .*crc32c {crc32c_of(BIG)}"):
        ops.execute_raw_download(RUN)

    assert "big.bag" not in run_files(world)
    assert part_files(world.data_root) == []


def test_cancel_stops_between_slices_and_leaves_no_file(world: World) -> None:
    world.seed_raw({f"{RUN}/big.bag": BIG})
    world.refresh()
    ctx = RecordingContext(cancel_after_checks=4)
    bucket = ConcurrencyProbe(world.raw)
    ops = world.ops(slicing=SlicePolicy(threshold=2 * MIB, slice_size=MIB // 2, workers=1))
    ops.raw_bucket = bucket

    with pytest.raises(JobCancelled):
        ops.execute_raw_download(RUN, ctx=ctx)

    assert run_files(world) == {}
    assert part_files(world.data_root) == []
    assert 1 <= bucket.calls < 11, "the slices after the cancel never started"


@pytest.mark.emulator
def test_a_slice_refused_with_403_fails_once_naming_the_object(gcs_world: World) -> None:
    seed(gcs_world)
    gcs_world.proxy.fail_next(1, 403, match=lambda r: "big.bag" in r.path and r.is_media)

    with pytest.raises(JobError, match=rf"^permission denied on the raw bucket .*{RUN}/big\.bag") as info:
        gcs_world.ops(slicing=SLICING).execute_raw_download(RUN)

    assert "\n" not in str(info.value)
    assert "big.bag" not in run_files(gcs_world)
    assert part_files(gcs_world.data_root) == []


def test_a_full_disk_fails_before_the_first_slice(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(world)

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.posix_fallocate", no_space)
    bucket = ConcurrencyProbe(world.raw)
    ops = world.ops(slicing=SLICING)
    ops.raw_bucket = bucket

    with pytest.raises(JobError, match=r"cannot write .*big\.bag: No space left on device"):
        ops.execute_raw_download(RUN)

    assert bucket.calls == 0
    assert part_files(world.data_root) == []


class ConcurrencyProbe(WrappedBucket):
    """Count download_range calls and the most in flight at once (optionally holding each until `together` are)."""

    def __init__(self, inner: object, together: int | None = None) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self._barrier = threading.Barrier(together, timeout=30) if together else None
        self.calls = 0
        self.most = 0
        self._active = 0
        self._lock = threading.Lock()

    def download_range(self, name: str, dest: Path, start: int, end: int, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.calls += 1
            self._active += 1
            self.most = max(self.most, self._active)
        try:
            if self._barrier is not None:
                self._barrier.wait()
            self.inner.download_range(name, dest, start, end, *args, **kwargs)
        finally:
            with self._lock:
                self._active -= 1


class DamagingBucket(WrappedBucket):
    """Flip a byte of the first slice written, for the first `times` attempts at the file."""

    def __init__(self, inner: object, times: int) -> None:
        super().__init__(inner)  # type: ignore[arg-type]
        self.remaining = times
        self._lock = threading.Lock()

    def download_range(self, name: str, dest: Path, start: int, end: int, *args: Any, **kwargs: Any) -> None:
        self.inner.download_range(name, dest, start, end, *args, **kwargs)
        if start != 0:
            return
        with self._lock:
            if self.remaining <= 0:
                return
            self.remaining -= 1
        with open(dest, "r+b") as handle:
            first = handle.read(1)
            handle.seek(0)
            handle.write(bytes([first[0] ^ 0xFF]))
