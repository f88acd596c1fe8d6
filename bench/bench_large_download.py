"""Time one large object (default 1 GiB) downloaded as concurrent slices against one stream.

The object sits on fake-gcs-server behind the fault proxy (in a child process), which adds latency per request
and caps every connection's bandwidth, as GCS holds one stream to a fraction of a VM's bandwidth. Both
strategies run through CloudOperationService.execute_raw_download (verified, fsynced, renamed). In the same run
the proxy's own ceiling is measured: as many raw ranged GETs as there are slice workers, bytes discarded.
Run: .venv/bin/python bench/bench_large_download.py [--mib 1024] [--latency-ms 30] [--mbps 40] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from _report import emit
from cachelib import SimpleCache

from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.services.operations.transfer import MIB, SlicePolicy
from src.storage import open_bucket
from tests.support.fake_gcs import unique_bucket_name
from tests.support.gcs import FakeGcs

RUN = "bench/region/field-01/tw01/lb1/2024-05-14T10-32-00"
NAME = "recording_0.bag"


def ceiling(proxy_url: str, bucket: str, size: int, connections: int) -> float:
    """Return the seconds connections parallel ranged GETs through the proxy take to move size bytes."""
    netloc = urlsplit(proxy_url).netloc
    path = f"/download/storage/v1/b/{bucket}/o/{quote(f'raw/{RUN}/{NAME}', safe='')}?alt=media"
    step = -(-size // connections)

    def fetch(start: int) -> int:
        end = min(start + step, size) - 1
        connection = http.client.HTTPConnection(netloc, timeout=300)
        try:
            connection.request("GET", path, headers={"Range": f"bytes={start}-{end}"})
            reply = connection.getresponse()
            buffer = bytearray(1 << 20)
            got = 0
            while count := reply.readinto(buffer):
                got += count
            return got
        finally:
            connection.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        moved = sum(pool.map(fetch, range(0, size, step)))
    if moved != size:
        raise SystemExit(f"the ceiling run moved {moved} of {size} bytes")
    return time.perf_counter() - started


def download(bucket: str, workdir: Path, label: str, slicing: SlicePolicy, workers: int) -> float:
    """Download the run with execute_raw_download under slicing; return the seconds, scratch removed."""
    raw, ml = open_bucket(f"gs://{bucket}/raw"), open_bucket(f"gs://{bucket}/ml")
    inventory = CloudInventoryService(raw, ml, workdir / f"{label}.parquet", SimpleCache())
    inventory.refresh_inventory()
    root = workdir / label
    ops = CloudOperationService(inventory, LocalStateService(root), raw, ml, root, max_workers=workers, slicing=slicing)
    started = time.perf_counter()
    job = ops.execute_raw_download(RUN)
    elapsed = time.perf_counter() - started
    if job.files_downloaded != 1:
        raise SystemExit(f"{label}: downloaded {job.files_downloaded} files")
    shutil.rmtree(root)
    return elapsed


def main() -> int:
    """Seed the object, time both strategies and the ceiling, print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=1024, help="object size in MiB (default 1024)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="latency per request (default 30)")
    parser.add_argument("--mbps", type=float, default=40.0, help="bandwidth cap per connection, MB/s (default 40)")
    parser.add_argument("--slice-mib", type=int, default=32, help="slice size (default 32, the setting's default)")
    parser.add_argument("--slice-workers", type=int, default=8, help="slices in flight (default 8, as the setting)")
    parser.add_argument("--repeat", type=int, default=3, help="timed sliced and ceiling runs, median (default 3)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    size = args.mib * MIB
    workdir = Path(tempfile.mkdtemp(prefix="bench-large-download-", dir=args.dir))
    load_before = os.getloadavg()
    sliced_policy = SlicePolicy(threshold=64 * MIB, slice_size=args.slice_mib * MIB, workers=args.slice_workers)
    stream_policy = SlicePolicy(threshold=size + 1)  # never slices: one stream
    try:
        with FakeGcs(remote=True) as gcs:
            os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
            bucket = gcs.server.create_bucket(unique_bucket_name("bench-large"))
            started = time.perf_counter()
            gcs.server.seed(bucket, {f"raw/{RUN}/{NAME}": os.urandom(size)})
            print(f"seeded {args.mib} MiB in {time.perf_counter() - started:.1f} s; scratch {workdir}")
            gcs.call("set_latency", args.latency_ms / 1000)
            gcs.call("set_bandwidth", args.mbps * 1e6)
            print(
                f"{args.latency_ms:g} ms per request, {args.mbps:g} MB/s per connection,"
                f" slices of {args.slice_mib} MiB, {args.slice_workers} in flight"
            )
            sliced_runs, ceiling_runs = [], []
            for _ in range(args.repeat):  # interleaved, so drift hits both alike
                ceiling_runs.append(ceiling(gcs.url, bucket, size, args.slice_workers))
                sliced_runs.append(download(bucket, workdir, "sliced", sliced_policy, 4))
                print(f"  sliced {sliced_runs[-1]:.2f} s, ceiling {ceiling_runs[-1]:.2f} s")
            stream = download(bucket, workdir, "stream", stream_policy, 4)
            print(f"  one stream {stream:.2f} s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sliced, floor = statistics.median(sliced_runs), statistics.median(ceiling_runs)
    speedup, overhead = stream / sliced, sliced / floor
    mb = size / 1e6
    load = " ".join(f"{x:.1f}" for x in load_before) + " -> " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\none stream: {stream:.2f} s ({mb / stream:.0f} MB/s)\nsliced:     {sliced:.2f} s ({mb / sliced:.0f} MB/s)"
        f"\nceiling:    {floor:.2f} s ({mb / floor:.0f} MB/s over {args.slice_workers} raw connections)"
        f"\nspeed-up {speedup:.1f}x, sliced / ceiling {overhead:.2f}x; load average {load}"
    )
    shape = f"{args.mib} MiB, {args.latency_ms:g} ms, {args.mbps:g} MB/s per connection"
    emit(
        "large download",
        f"sliced vs one stream, {shape}",
        f"{speedup:.1f}x ({stream:.1f} s / {sliced:.1f} s)",
        ">= 4x",
        speedup >= 4,
        f"{mb / sliced:.0f} vs {mb / stream:.0f} MB/s",
    )
    emit(
        "large download",
        f"sliced vs the proxy's ceiling ({args.slice_workers} raw ranged GETs), same run",
        f"{overhead:.2f}x ({sliced:.1f} s / {floor:.1f} s)",
        "<= 1.3x",
        overhead <= 1.3,
        "sliced includes the crc32c of the whole file, fsync and rename",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
