"""State overview of 5,000 runs (half downloaded, a quarter extracted): batched walk vs per-run look-ups.

Run: .venv/bin/python bench/bench_state_overview.py [--runs 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cachelib import SimpleCache

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import emit

from src.models import EXPECTED_EXTRACTION_FILES
from src.services.data_state import DataStateService
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.storage.local import LocalBucket

TARGET_S = 1.0


def build(root: Path, runs: int) -> DataStateService:
    """Create a raw bucket with `runs` runs (2 bags each) and local state for some of them."""
    raw, ml, data = root / "raw", root / "ml", root / "data"
    for index in range(runs):
        run = f"acme/r{index % 4}/f{index % 10}/tw{index % 3}/lb{index % 2}/2024-01-01T00-00-{index:05d}"
        (raw / run).mkdir(parents=True)
        for bag in ("a.bag", "b.mcap"):
            (raw / run / bag).write_bytes(b"x")
        if index % 2 == 0:  # half downloaded
            (data / "raw" / run).mkdir(parents=True)
            for bag in ("a.bag", "b.mcap"):
                (data / "raw" / run / bag).write_bytes(b"x")
        if index % 4 == 0:  # a quarter extracted
            (data / "processed" / run).mkdir(parents=True)
            for name in EXPECTED_EXTRACTION_FILES:
                (data / "processed" / run / name).write_bytes(b"x")
    ml.mkdir()
    inventory = CloudInventoryService(LocalBucket(raw), LocalBucket(ml), root / "snap.parquet", SimpleCache())
    inventory.refresh_inventory()
    return DataStateService(inventory, LocalStateService(data))


def timed(func, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bagboard-bench-") as tmp:
        started = time.perf_counter()
        service = build(Path(tmp), args.runs)
        print(f"built {args.runs:,} runs in {time.perf_counter() - started:.1f} s")
        rows = service.get_state_overview({})
        assert len(rows) == args.runs
        counts = {key: sum(r[key] for r in rows) for key in ("downloaded", "extracted")}
        print(f"downloaded {counts['downloaded']:,}, extracted {counts['extracted']:,}")
        batched = timed(lambda: service.get_state_overview({}), args.repeat)
        coords = service.generate_coordinates_from_filters({})
        atomic = timed(lambda: [service.get_complete_run_state(c) for c in coords], max(1, args.repeat // 2))
    b, a = statistics.median(batched), statistics.median(atomic)
    print(f"{'measure':<44}{'median':>10}{'target':>10}")
    verdict = "PASS" if b <= TARGET_S else "MISS"
    print(f"{'state overview, one walk (get_state_overview)':<44}{b:>9.3f}s{TARGET_S:>9.1f}s  {verdict}")
    print(f"{'per-run atomic look-ups (get_complete_run_state)':<44}{a:>9.3f}s")
    print(f"ratio: {a / b:.1f}x (per-run stat-ing / one walk, same run)")
    emit(
        "state overview",
        f"{args.runs:,} runs (half downloaded, a quarter extracted)",
        f"{b:.3f} s",
        "<= 1 s",
        b <= TARGET_S,
        f"{a / b:.1f}x faster than per-run look-ups ({a:.2f} s)",
    )


if __name__ == "__main__":
    main()
