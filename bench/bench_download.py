"""Time CloudOperationService.execute_raw_download against a sequential blob.download_to_filename loop.

Both download one run (default 20 files x 20 MB) from fake-gcs-server behind the fault proxy, which adds
latency per request; the proxy runs in a child process (the server is a Go process) so neither shares our GIL.
Run: .venv/bin/python bench/bench_download.py [--files 20] [--mb 20] [--latency-ms 50] [--workers 8]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from _report import emit
from cachelib import SimpleCache
from google.cloud import storage

from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.services.operations.files import file_digest
from src.storage import GcsBucket, open_bucket
from src.storage.gcs import default_client
from tests.support.fake_gcs import unique_bucket_name
from tests.support.gcs import FakeGcs

RUN = "bench/region/field-01/tw01/lb1/2024-05-14T10-32-00"


@dataclass
class Timing:
    """One timed strategy: wall seconds and requests the proxy saw."""

    seconds: float
    requests: int

    def mb_per_s(self, total_bytes: int) -> float:
        """Return throughput in MB/s (10^6 bytes)."""
        return total_bytes / 1e6 / self.seconds


class Bench:
    """fake-gcs-server with one run seeded, and both download strategies over it."""

    def __init__(self, gcs: FakeGcs, workdir: Path, workers: int) -> None:
        self.gcs = gcs
        self.control: Callable[..., Any] = gcs.call
        self.bucket = ""
        self.workdir = workdir
        self.workers = workers
        self.names: list[str] = []
        self.sizes: dict[str, int] = {}

    def seed(self, files: int, size: int) -> None:
        """Seed files objects of size random bytes into a new bucket (one call each: less memory)."""
        self.control("reset")
        self.bucket = self.gcs.server.create_bucket(unique_bucket_name("bench"))
        self.names = [f"bag_{i:03d}.bag" for i in range(files)]
        for name in self.names:
            self.gcs.server.seed(self.bucket, {f"raw/{RUN}/{name}": os.urandom(size)})
        self.sizes = dict.fromkeys(self.names, size)

    @property
    def total_bytes(self) -> int:
        """Return the bytes of the seeded run."""
        return sum(self.sizes.values())

    def service(self, data_root: Path) -> CloudOperationService:
        """Build the service over a fresh inventory (its listing is done here, before any timing)."""
        raw = open_bucket(f"gs://{self.bucket}/raw")
        ml = open_bucket(f"gs://{self.bucket}/ml")
        assert isinstance(raw, GcsBucket)
        inventory = CloudInventoryService(raw, ml, self.workdir / "snap.parquet", SimpleCache())
        inventory.refresh_inventory()
        return CloudOperationService(
            inventory, LocalStateService(data_root), raw, ml, data_root, max_workers=self.workers
        )

    def sequential(self, dest: Path) -> Timing:
        """Download every file one after another with the client library, as a plain script would."""
        dest.mkdir(parents=True, exist_ok=True)
        handle = default_client().bucket(self.bucket)
        before = self._requests()
        start = time.perf_counter()
        for name in self.names:
            blob: storage.Blob = handle.blob(f"raw/{RUN}/{name}")
            blob.download_to_filename(str(dest / name))
        return Timing(time.perf_counter() - start, self._requests() - before)

    def parallel(self, data_root: Path) -> Timing:
        """Download the run with execute_raw_download (parallel, verified, fsynced, atomic)."""
        ops = self.service(data_root)
        before = self._requests()
        start = time.perf_counter()
        job = ops.execute_raw_download(RUN)
        elapsed = time.perf_counter() - start
        if job.files_downloaded != len(self.names):
            raise SystemExit(f"execute_raw_download fetched {job.files_downloaded} of {len(self.names)} files")
        return Timing(elapsed, self._requests() - before)

    def _requests(self) -> int:
        """Return the HTTP requests the shared client has sent so far."""
        client = default_client()
        if not getattr(client, "_bench_counted", False):
            # A response hook on the library's session counts every request, retries included.
            client._http.hooks["response"].append(self._count)
            client._bench_counted = True
        return self._sent

    _sent = 0

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        Bench._sent += 1
        return response

    def verify(self, sequential_dir: Path, data_root: Path) -> None:
        """Check both strategies produced the same bytes (crc32c and size per file)."""
        parallel_dir = data_root / "raw" / RUN
        for name in self.names:
            a, b = file_digest(sequential_dir / name), file_digest(parallel_dir / name)
            if a != b or a.size != self.sizes[name]:
                raise SystemExit(f"{name} differs between the strategies: {a} vs {b}")

    def measure(self, latency_s: float, label: str, repeat: int) -> tuple[Timing, Timing]:
        """Time both strategies repeat times (interleaved) at latency_s, verify them, print and return medians."""
        self.control("set_latency", latency_s)
        runs: dict[str, list[Timing]] = {"seq": [], "par": []}
        for attempt in range(repeat):
            seq_dir = self.workdir / f"seq-{attempt}"
            par_root = self.workdir / f"par-{attempt}"
            runs["seq"].append(self.sequential(seq_dir))
            runs["par"].append(self.parallel(par_root))
            self.verify(seq_dir, par_root)
            shutil.rmtree(seq_dir)
            shutil.rmtree(par_root)
        seq, par = (_median(runs[key]) for key in ("seq", "par"))
        total = self.total_bytes
        print(
            f"  {label:<10} sequential {seq.seconds:7.3f} s {seq.mb_per_s(total):7.1f} MB/s {seq.requests:4d} req"
            f" | parallel {par.seconds:7.3f} s {par.mb_per_s(total):7.1f} MB/s {par.requests:4d} req"
            f" | ratio {seq.seconds / par.seconds:4.1f}x | identical files: yes"
        )
        print(
            f"  {'':<10} runs (s): sequential {' '.join(f'{t.seconds:.2f}' for t in runs['seq'])}"
            f", parallel {' '.join(f'{t.seconds:.2f}' for t in runs['par'])}"
        )
        return seq, par


def _median(timings: list[Timing]) -> Timing:
    """Return the median timing by wall time."""
    return sorted(timings, key=lambda t: t.seconds)[len(timings) // 2]


def main() -> int:
    """Seed the run, time both strategies with and without latency, and print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=20, help="files in the run (default 20)")
    parser.add_argument("--mb", type=float, default=20.0, help="MB per file (default 20)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency per request (default 50)")
    parser.add_argument("--workers", type=int, default=16, help="max_workers of the service (default 16)")
    parser.add_argument("--small-kb", type=int, default=64, help="file size of the latency-bound check (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per strategy, median shown (default 3)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir; try /dev/shm)")
    args = parser.parse_args()
    size = int(args.mb * 1e6)
    latency = args.latency_ms / 1000
    workdir = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.dir))
    started = time.perf_counter()
    try:
        with FakeGcs(remote=True) as remote:
            os.environ["STORAGE_EMULATOR_HOST"] = remote.url
            bench = Bench(remote, workdir, args.workers)
            print(
                f"{args.files} files x {args.mb:g} MB, {args.latency_ms:g} ms per request, max_workers={args.workers},"
                f" fake-gcs-server, fault proxy in a child process, median of {args.repeat}, scratch {workdir}"
            )
            bench.seed(args.files, size)
            seq, par = bench.measure(latency, "latency", args.repeat)
            seq0, par0 = bench.measure(0.0, "no latency", args.repeat)
            ratio = seq.seconds / par.seconds
            if args.small_kb:
                bench.seed(args.files, args.small_kb * 1000)
                small_seq, small_par = bench.measure(latency, f"{args.small_kb} kB", args.repeat)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    total = args.files * size
    ceiling = max(seq0.mb_per_s(total), par0.mb_per_s(total))
    waves = math.ceil(args.files / args.workers)
    # Each file costs one round trip for both strategies (the listing already knows its generation).
    floor = max(total / 1e6 / ceiling, waves * latency)
    ceiling_ratio = seq.seconds / floor
    small_ratio = small_seq.seconds / small_par.seconds if args.small_kb else 0.0
    print(
        f"\nsequential: {seq.seconds:.3f} s ({seq.mb_per_s(total):.1f} MB/s)"
        f"\nparallel:   {par.seconds:.3f} s ({par.mb_per_s(total):.1f} MB/s)"
        f"\nbyte ceiling without latency: {ceiling:.1f} MB/s (best of both strategies);"
        f" best possible parallel time here ~{floor:.2f} s, i.e. ratio <= {seq.seconds / floor:.1f}x"
    )
    if args.small_kb:
        print(
            f"latency-bound check ({args.files} x {args.small_kb} kB):"
            f" ratio {small_seq.seconds / small_par.seconds:.1f}x"
        )
    if ratio < 4 and total / 1e6 / ceiling > waves * latency:
        print(
            f"note: moving the bytes is the bottleneck, not the latency: this machine serves and receives at most"
            f" {ceiling:.0f} MB/s (server, proxy and client share its cores), so {total / 1e6:.0f} MB take"
            f" >= {total / 1e6 / ceiling:.2f} s however many downloads run at once; parallelism can only hide the"
            f" {args.files} x {args.latency_ms:g} ms of round trips (see the latency-bound check for that alone)."
        )
    print(f"ratio: {ratio:.1f}x  (total runtime {time.perf_counter() - started:.0f} s)")
    shape = f"{args.files} x {args.mb:g} MB, {args.latency_ms:g} ms"
    emit(
        "download",
        f"parallel vs sequential download_to_filename, {shape}",
        f"{ratio:.1f}x",
        ">= 4x",
        ratio >= 4,
        f"{par.mb_per_s(total):.0f} vs {seq.mb_per_s(total):.0f} MB/s; bytes-bound ceiling here {ceiling_ratio:.1f}x",
    )
    if args.small_kb:
        emit(
            "download",
            f"same, latency-bound ({args.files} x {args.small_kb} kB)",
            f"{small_ratio:.1f}x",
            ">= 4x",
            small_ratio >= 4,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
