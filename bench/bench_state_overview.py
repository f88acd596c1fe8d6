"""State overview of 5,000 runs (half downloaded, a quarter extracted): the download manager's summary (KPIs over
every run, the first rows as shown) vs the per-run rows of one walk vs per-run look-ups.

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

from pages.download_manager.callbacks import MAX_GRID_ROWS
from src.models import EXPECTED_EXTRACTION_FILES
from src.services.data_state import DataStateService
from src.services.inventory import CloudInventoryService
from src.services.local_scan import LocalScan
from src.services.local_state import LocalStateService
from src.storage.local import LocalBucket

TARGET_S = 1.0
# Half the runs here are local, so the one directory walk (which both paths need) is most of a refresh: the summary
# may add a few tens of ms to it, whatever the number of runs.
SUMMARY_OVER_WALK_S = 0.05


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
        rows = service.get_state_overview_data(service.generate_coordinates_from_filters({}), {})
        assert len(rows) == args.runs
        counts = {key: sum(r[key] for r in rows) for key in ("downloaded", "extracted")}
        print(f"downloaded {counts['downloaded']:,}, extracted {counts['extracted']:,}")
        check_summary(service, rows)
        per_row = timed(
            lambda: service.get_state_overview_data(service.generate_coordinates_from_filters({}), {}), args.repeat
        )
        summary = timed(lambda: service.get_state_summary({}, limit=MAX_GRID_ROWS), args.repeat)
        walk = timed(lambda: LocalScan(service.local.data_root, {}), args.repeat)
        coords = service.generate_coordinates_from_filters({})
        atomic = timed(lambda: [service.get_complete_run_state(c) for c in coords], max(1, args.repeat // 2))
    report(args.runs, *(statistics.median(t) for t in (summary, walk, per_row, atomic)))


def check_summary(service: DataStateService, rows: list[dict]) -> None:
    """Fail unless the summary shows the per-run path's first rows and counts what it counts."""
    summary = service.get_state_summary({}, limit=MAX_GRID_ROWS)
    assert summary.rows == rows[:MAX_GRID_ROWS]
    assert (summary.total_runs, summary.downloaded, summary.extracted, summary.analyzed) == (
        len(rows),
        sum(r["downloaded"] for r in rows),
        sum(r["extracted"] for r in rows),
        sum(r["analyzed"] for r in rows),
    )


def report(runs: int, summary: float, walk: float, per_row: float, atomic: float) -> None:
    """Print the medians and emit the headline figures."""
    summary_target = walk + SUMMARY_OVER_WALK_S
    print(f"{'measure':<58}{'median':>10}{'target':>10}")
    for label, value, target in (
        (f"table summary, first {MAX_GRID_ROWS:,} rows (get_state_summary)", summary, summary_target),
        ("  of which the directory walk (LocalScan)", walk, None),
        ("per-run rows, one walk (get_state_overview_data)", per_row, TARGET_S),
        ("per-run atomic look-ups (get_complete_run_state)", atomic, None),
    ):
        verdict = "" if target is None else f"{target:>9.2f}s  {'PASS' if value <= target else 'MISS'}"
        print(f"{label:<58}{value:>9.3f}s{verdict}")
    print(f"ratio: {atomic / per_row:.1f}x (per-run stat-ing / one walk, same run)")
    print(f"ratio: {per_row / summary:.1f}x (per-run rows / summary, same run)")
    emit(
        "state overview",
        f"{runs:,} runs (half downloaded, a quarter extracted)",
        f"{per_row:.3f} s",
        "<= 1 s",
        per_row <= TARGET_S,
        f"{atomic / per_row:.1f}x faster than per-run look-ups ({atomic:.2f} s)",
    )
    emit(
        "state overview",
        f"table summary of {runs:,} runs, first {MAX_GRID_ROWS:,} rows shown",
        f"{summary * 1000:.1f} ms",
        f"<= walk + {SUMMARY_OVER_WALK_S * 1000:.0f} ms",
        summary <= summary_target,
        f"{per_row / summary:.1f}x faster than building every row ({per_row:.2f} s); the walk {walk * 1000:.0f} ms",
    )


if __name__ == "__main__":
    main()
