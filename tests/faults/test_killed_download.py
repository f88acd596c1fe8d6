"""Fault: the worker running a raw download is SIGKILLed mid-way (OOM killer, node loss, kill -9).

Both the one-stream path (many files) and the sliced path (one large object in concurrent ranges).

A child process downloads a multi-file run through the proxy (with latency, so the download takes a
while); the test kills it once some files are published and others are still in flight. Nothing may
carry a final name unless it is complete and verified; leftover '.part' files are never counted as
bags; a rerun removes them, fetches only what is missing and verifies it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cachelib import SimpleCache

from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.services.operations.files import is_part_name
from src.services.operations.transfer import SlicePolicy
from src.storage import open_bucket
from tests.faults.helpers import FAST_RETRY, crc32c_of, file_crc32c, is_media, random_bytes
from tests.support.gcs import GcsTestBucket

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUN = "acme/north/f1/tw1/lb1/2024-05-14T10-32-00"
FILE_SIZE = 3 << 20
LATENCY_S = 0.15  # per request, so each file takes at least this long and files finish one by one


def run_objects() -> dict[str, bytes]:
    """Return a run of eight ROS1 bags plus a ROS2 bag folder, keyed by name relative to the run."""
    objects = {f"drive_{index:03d}.bag": random_bytes(FILE_SIZE, index) for index in range(8)}
    objects["drive_100/metadata.yaml"] = b"rosbag2_bagfile_information: {}\n"
    objects["drive_100/drive_100_0.mcap"] = random_bytes(FILE_SIZE, 100)
    return objects


def size_of(path: Path) -> int:
    """Return the file's size, 0 if it is gone (a '.part' file is renamed or removed at any moment)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def local_files(run_dir: Path) -> tuple[dict[str, Path], list[Path]]:
    """Return (final-named files by relative name, '.part' files) below run_dir."""
    finals: dict[str, Path] = {}
    parts: list[Path] = []
    if not run_dir.exists():
        return finals, parts
    for path in run_dir.rglob("*"):
        if not path.is_file():
            continue
        if is_part_name(path.name):
            parts.append(path)
        else:
            finals[path.relative_to(run_dir).as_posix()] = path
    return finals, parts


def start_worker(gcs: GcsTestBucket, *args: object) -> subprocess.Popen[str]:
    """Start tests.faults.download_worker with args, talking to the test's fake-gcs-server."""
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs.url, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tests.faults.download_worker", *map(str, args)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(child: subprocess.Popen[str], ready: Callable[[], bool]) -> None:
    """SIGKILL child as soon as ready() holds (failing if it finished first) and reap it."""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None and not ready():
            time.sleep(0.002)
        assert child.poll() is None, f"the download ended before it could be killed: {child.communicate()}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_sigkilled_download_leaves_no_partial_final_file_and_a_rerun_fetches_only_the_rest(
    gcs: GcsTestBucket, tmp_path: Path
):
    objects = run_objects()
    gcs.seed({f"raw/{RUN}/{rel}": data for rel, data in objects.items()})
    raw_url, ml_url = f"gs://{gcs.bucket}/raw", f"gs://{gcs.bucket}/ml"
    raw, ml = open_bucket(raw_url, retry=FAST_RETRY), open_bucket(ml_url, retry=FAST_RETRY)
    snapshot = tmp_path / "state" / "snapshot.parquet"
    inventory = CloudInventoryService(raw, ml, snapshot, SimpleCache())
    inventory.refresh_inventory()
    # What the bucket reports for each object (what the download verifies against), checked against the bytes.
    expected_crc = {info.name.removeprefix(RUN + "/"): info.crc32c for info in inventory.get_raw_objects(RUN)}
    assert expected_crc == {rel: crc32c_of(data) for rel, data in objects.items()}
    data_root = tmp_path / "data"
    local = LocalStateService(data_root)
    run_dir = local.raw_path(RUN)

    gcs.proxy.reset()
    gcs.proxy.set_latency(LATENCY_S)
    child = start_worker(gcs, raw_url, ml_url, snapshot, data_root, RUN, "2")
    seen = {"partial": False}

    def mid_download() -> bool:
        finals, parts = local_files(run_dir)
        in_flight = any(size_of(p) > 0 for p in parts)
        seen["partial"] = in_flight
        # Some files are published and at least two are not: a true mid-download kill.
        return 1 <= len(finals) <= len(objects) - 2 and (in_flight or len(finals) >= 3)

    kill_when(child, mid_download)
    saw_partial_part = seen["partial"]
    assert child.returncode == -signal.SIGKILL

    finals, parts = local_files(run_dir)
    assert finals, "the kill came after some files were published"
    assert len(finals) < len(objects), "the kill came before the download finished"
    for rel, path in finals.items():
        assert rel in objects, f"unexpected file {rel}"
        assert file_crc32c(path) == expected_crc[rel], f"{rel} carries a final name but is partial or wrong"
    status = local.check_raw_downloaded(RUN)
    final_bags = sorted(rel for rel in finals if rel.endswith((".bag", ".mcap")))
    assert status.bag_names == final_bags, "'.part' files are never counted as bags"
    assert status.total_size == len(final_bags) * FILE_SIZE
    print(
        f"killed with {len(finals)} of {len(objects)} files published, {len(parts)} .part file(s) left"
        f" (one partly written: {saw_partial_part})"
    )

    # The rerun (any worker, here in process) fetches only what is missing and verifies it.
    missing = sorted(set(objects) - set(finals))
    gcs.proxy.reset()
    ops = CloudOperationService(inventory, local, raw, ml, data_root, max_workers=4)
    lines: list[str] = []

    class Context:
        job_id = "rerun"

        def progress(self, **_: object) -> None:
            pass

        def log(self, line: str) -> None:
            lines.append(line)

        def check_cancelled(self) -> None:
            pass

    job = ops.execute_raw_download(RUN, ctx=Context())

    assert job.files_downloaded == job.total_files == len(missing)
    assert sorted(job.files_to_download) == missing
    fetched = sorted(r.path.rsplit("%2F", 1)[-1] for r in gcs.proxy.requests if is_media(r) and r.status == 200)
    assert fetched == sorted(rel.rsplit("/", 1)[-1] for rel in missing), "only the missing files were fetched"
    finals_after, parts_after = local_files(run_dir)
    assert parts_after == [], "the rerun removed the leftover '.part' files"
    if parts:
        assert any("partial file(s) left by an interrupted download" in line for line in lines)
    assert sorted(finals_after) == sorted(objects)
    for rel, path in finals_after.items():
        assert file_crc32c(path) == expected_crc[rel], rel
    status = local.check_raw_downloaded(RUN)
    assert status.bag_count == 9 and status.total_size == 9 * FILE_SIZE


BIG_SIZE = 24 << 20
SLICE = 2 << 20
SLICE_BANDWIDTH = 2e6  # bytes per second per connection: the slices take seconds, so the kill lands mid-way


def test_a_sigkilled_sliced_download_leaves_no_final_name_and_a_rerun_finishes(gcs: GcsTestBucket, tmp_path: Path):
    data = random_bytes(BIG_SIZE, 7)
    rel = "drive_big.bag"
    gcs.seed({f"raw/{RUN}/{rel}": data})
    raw_url, ml_url = f"gs://{gcs.bucket}/raw", f"gs://{gcs.bucket}/ml"
    raw, ml = open_bucket(raw_url, retry=FAST_RETRY), open_bucket(ml_url, retry=FAST_RETRY)
    snapshot = tmp_path / "state" / "snapshot.parquet"
    inventory = CloudInventoryService(raw, ml, snapshot, SimpleCache())
    inventory.refresh_inventory()
    data_root = tmp_path / "data"
    local = LocalStateService(data_root)
    run_dir = local.raw_path(RUN)

    gcs.proxy.reset()
    gcs.proxy.set_bandwidth(SLICE_BANDWIDTH)
    policy = [str(4 << 20), str(SLICE), "3"]  # sliced from 4 MiB on: 12 slices, 3 at a time
    child = start_worker(gcs, raw_url, ml_url, snapshot, data_root, RUN, "1", *policy)
    # Kill once a few slices have been asked for, some finished (a 4th request) and most not.
    kill_when(child, lambda: len(gcs.proxy.media_requests()) >= 5)
    assert child.returncode == -signal.SIGKILL

    ranges = sorted(r.headers.get("range") or "" for r in gcs.proxy.media_requests())
    assert all(value.startswith("bytes=") for value in ranges), "every request was one slice"
    finals, parts = local_files(run_dir)
    assert finals == {}, "nothing carries the final name after a kill mid-download"
    assert len(parts) == 1 and size_of(parts[0]) == BIG_SIZE, "one .part file, sized up front, is left"
    assert file_crc32c(parts[0]) != crc32c_of(data), "and it is incomplete"
    assert local.check_raw_downloaded(RUN).bag_count == 0

    gcs.proxy.reset()
    ops = CloudOperationService(
        inventory, local, raw, ml, data_root, slicing=SlicePolicy(threshold=4 << 20, slice_size=SLICE, workers=3)
    )
    job = ops.execute_raw_download(RUN)

    assert job.files_downloaded == 1
    finals, parts = local_files(run_dir)
    assert parts == []
    assert file_crc32c(finals[rel]) == crc32c_of(data)
    assert len(gcs.proxy.media_requests()) == BIG_SIZE // SLICE
