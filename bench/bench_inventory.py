"""Benchmark the cloud inventory at scale: build, snapshot write, cold load, RSS and query latency.

Run: .venv/bin/python bench/bench_inventory.py [--objects 1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from _report import emit

OBJECTS_PER_RUN = 40
FANOUT = (4, 5, 10, 5, 5)  # cid, regionid, fieldid, twid, lbid: 5,000 label-box paths
TARGETS = {"load_s": 1.0, "rss_mb": 400.0, "hier_ms": 5.0, "temporal_ms": 20.0}

# Per-run object template: (bucket, prefix, suffix, mean size). The run number goes between.
TEMPLATE: list[tuple[str, str, str, int]] = [
    ("raw", "rec_", "_0.bag", 2_000_000_000),
    ("raw", "rec_", "_1.bag", 2_000_000_000),
    ("raw", "rosbag2_", "/metadata.yaml", 2_000),
    ("raw", "rosbag2_", "/rosbag2_0.mcap", 800_000_000),
    ("raw", "rosbag2_", "/rosbag2_1.mcap", 800_000_000),
    ("ml", "manifest_", ".csv", 5_000),
] + [
    entry
    for i in range(17)
    for entry in (
        ("ml", "images/f", f"_{i:02d}.jpg", 250_000),
        ("ml", "images/f", f"_{i:02d}.json", 2_000),
    )
]
assert len(TEMPLATE) == OBJECTS_PER_RUN


def b64_strings(rng: np.random.Generator, n: int, raw_bytes: int) -> pa.Array:
    """Return n random base64 strings of raw_bytes each (one buffer, no Python objects per row)."""
    width = raw_bytes * 4 // 3
    data = base64.b64encode(rng.bytes(n * raw_bytes))
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def timestamp_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Return n distinct-ish timestamp folder names in mixed formats, ~2% unparseable."""
    seconds = rng.integers(1_672_531_200, 1_767_225_600, n)  # 2023-01-01 .. 2026-01-01
    stamps = seconds.astype("datetime64[s]").astype(str)  # 'YYYY-MM-DDTHH:MM:SS'
    styles = rng.integers(0, 50, n)
    out = np.empty(n, dtype=object)
    for i, (text, style) in enumerate(zip(stamps, styles, strict=True)):
        if style == 0:
            out[i] = f"session_{i:06d}"
        elif style < 10:
            out[i] = text.replace("-", "").replace(":", "").replace("T", "_")
        else:
            out[i] = text.replace(":", "-")
    return out


def synthetic_listing(n_objects: int, seed: int = 7) -> pa.Table:
    """Build a listing table shaped like both buckets' listings, directly with numpy/arrow."""
    rng = np.random.default_rng(seed)
    # ~0.1% of objects sit at the wrong depth, so the unrecognised path is exercised too.
    n_runs = max(1, (n_objects - n_objects // 1000) // OBJECTS_PER_RUN)
    n_paths = int(np.prod(FANOUT))
    path_of_run = np.arange(n_runs) % n_paths
    # Mixed-radix digits of the path number give each level's value.
    rest = path_of_run.copy()
    parts = []
    for fan in FANOUT[::-1]:
        parts.append(rest % fan)
        rest //= fan
    parts = parts[::-1]
    prefixes = ("customer", "region", "field", "tw", "lb")
    columns = [
        pc.binary_join_element_wise(prefix, pc.cast(pa.array(p), pa.string()), "")
        for prefix, p in zip(prefixes, parts, strict=True)
    ]
    columns.append(pa.array(timestamp_names(rng, n_runs), type=pa.string()))
    coord = pc.binary_join_element_wise(*columns, "/")

    run_idx = np.repeat(np.arange(n_runs), OBJECTS_PER_RUN)
    slot = np.tile(np.arange(OBJECTS_PER_RUN), n_runs)
    prefix = pa.array([t[1] for t in TEMPLATE]).take(pa.array(slot))
    suffix = pa.array([t[2] for t in TEMPLATE]).take(pa.array(slot))
    number = pc.utf8_lpad(pc.cast(pa.array(run_idx), pa.string()), 6, "0")
    rel = pc.binary_join_element_wise(prefix, number, suffix, "")
    names = pc.binary_join_element_wise(coord.take(pa.array(run_idx)), rel, "/")
    bucket = pa.array([t[0] for t in TEMPLATE]).take(pa.array(slot))
    mean = np.array([t[3] for t in TEMPLATE])[slot]
    size = (mean * rng.uniform(0.5, 1.5, len(slot))).astype(np.int64)

    extra = n_objects - len(slot)  # the remainder: objects at the wrong depth (unrecognised)
    if extra > 0:
        names = pa.concat_arrays(
            [names, pa.array([f"customer0/stray_{i}.txt" for i in range(extra)], type=pa.string())]
        )
        bucket = pa.concat_arrays([bucket, pa.array(["raw"] * extra)])
        size = np.concatenate([size, np.full(extra, 10, dtype=np.int64)])
    n = len(names)
    updated = rng.integers(1_672_531_200_000_000, 1_767_225_600_000_000, n)
    return pa.table(
        {
            "bucket": bucket,
            "name": names,
            "size": size,
            "updated": pa.array(updated).cast(pa.timestamp("us", tz="UTC")),
            "crc32c": b64_strings(rng, n, 6),
            "md5": b64_strings(rng, n, 18),
            "generation": rng.integers(1_600_000_000_000_000, 1_800_000_000_000_000, n),
        }
    )


def rss_mb() -> tuple[float, float]:
    """Return (current RSS, peak RSS) in MB from /proc/self/status."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class _NoBucket:
    """A bucket that must never be listed during the load benchmark."""

    url = "none://"

    def iter_objects(self, prefix: str = "") -> Any:
        raise AssertionError("the benchmark must not list buckets")


def child(snapshot: Path, queries: int, seed: int) -> dict[str, Any]:
    """Load the snapshot in this fresh process and time queries; return the measurements."""
    t0 = time.perf_counter()
    from cachelib import FileSystemCache

    from src.models.coordinate import FILTER_LEVELS, HIERARCHY_LEVELS
    from src.services import inventory as inv_mod

    imports = time.perf_counter() - t0
    rss_before, _ = rss_mb()
    cache_dir = tempfile.mkdtemp(prefix="bench-cache-")
    service = inv_mod.CloudInventoryService(
        _NoBucket(), _NoBucket(), snapshot, FileSystemCache(cache_dir, default_timeout=0)
    )
    t0 = time.perf_counter()
    inventory = service.load()
    load = time.perf_counter() - t0
    assert inventory is not None
    rss, hwm = rss_mb()

    # Where the load time goes: the same steps again, timed one by one (file now in page cache).
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    table = pq.read_table(snapshot, columns=list(inv_mod.OBJECT_COLUMNS), memory_map=True, pre_buffer=False)
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = inv_mod._frame_from_table(table)
    t_frame = time.perf_counter() - t0
    t0 = time.perf_counter()
    inv_mod._runs_from_objects(*inv_mod._normalise_categories(frame))
    t_runs = time.perf_counter() - t0
    del table, frame

    rng = np.random.default_rng(seed)
    runs = inventory.runs
    picks = rng.integers(0, len(runs), queries)
    paths = [tuple(str(runs[level].iloc[i]) for level in HIERARCHY_LEVELS) for i in picks]
    hier, temporal = [], []
    for path, depth in zip(paths, rng.integers(0, len(HIERARCHY_LEVELS), queries), strict=True):
        t0 = time.perf_counter()
        options = service.get_hierarchy_level(HIERARCHY_LEVELS[depth], path[:depth])
        hier.append((time.perf_counter() - t0) * 1000)
        assert path[depth] in options
    for path, depth in zip(paths, rng.integers(0, len(FILTER_LEVELS) + 1, queries), strict=True):
        filters = dict(zip(FILTER_LEVELS, path[:depth], strict=False))
        t0 = time.perf_counter()
        frame = service.get_temporal_data(filters)
        temporal.append((time.perf_counter() - t0) * 1000)
        assert len(frame) >= 1
    t0 = time.perf_counter()
    everything = service.get_temporal_data({})
    all_runs_ms = (time.perf_counter() - t0) * 1000
    return {
        "imports_s": imports,
        "rss_before_mb": rss_before,
        "load_s": load,
        "read_s": t_read,
        "frame_s": t_frame,
        "runs_s": t_runs,
        "rss_mb": rss,
        "hwm_mb": hwm,
        "hier_ms": hier,
        "temporal_ms": temporal,
        "all_runs_ms": all_runs_ms,
        "all_runs_rows": len(everything),
        "runs": len(runs),
        "objects": len(inventory.objects),
    }


def percentile(values: list[float], q: float) -> float:
    """Return the q-th percentile."""
    return float(np.percentile(values, q))


def main() -> None:
    """Run the benchmark and print measured against target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="cold-load processes (median reported)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries, args.seed)))
        return

    from src.services.inventory import build_inventory, write_snapshot

    t0 = time.perf_counter()
    listing = synthetic_listing(args.objects, args.seed)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    inventory = build_inventory(listing, built_at=datetime.now(UTC))
    t_build = time.perf_counter() - t0
    del listing
    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        snapshot = Path(tmp) / "inventory.parquet"
        t0 = time.perf_counter()
        write_snapshot(inventory, snapshot)
        t_write = time.perf_counter() - t0
        size_mb = snapshot.stat().st_size / 2**20
        objects, runs = len(inventory.objects), inventory.run_count
        unrecognised = inventory.unrecognised_count
        del inventory
        results = []
        for _ in range(max(1, args.repeat)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(snapshot), "--queries", str(args.queries)],
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        # The median cold load (and that process's other figures) damps a noisy shared machine.
        results.sort(key=lambda r: r["load_s"])
        child_result = results[len(results) // 2]
        loads = ", ".join(f"{r['load_s']:.2f}" for r in results)

    hier, temporal = child_result["hier_ms"], child_result["temporal_ms"]
    rows = [
        ("objects / runs / unrecognised", f"{objects:,} / {runs:,} / {unrecognised:,}", ""),
        ("synthetic listing (numpy)", f"{t_gen:.2f} s", "-"),
        ("build_inventory", f"{t_build:.2f} s", "-"),
        ("snapshot write", f"{t_write:.2f} s ({size_mb:.1f} MB)", "-"),
        ("imports (fresh process)", f"{child_result['imports_s']:.2f} s", "-"),
        (
            f"cold load median of {len(results)}",
            f"{child_result['load_s']:.3f} s ({loads})",
            f"<= {TARGETS['load_s']} s",
        ),
        ("  parquet read (repeat)", f"{child_result['read_s']:.3f} s", "-"),
        ("  arrow -> frame (repeat)", f"{child_result['frame_s']:.3f} s", "-"),
        ("  runs + categories (repeat)", f"{child_result['runs_s']:.3f} s", "-"),
        ("RSS after imports", f"{child_result['rss_before_mb']:.0f} MB", "-"),
        ("RSS after load", f"{child_result['rss_mb']:.0f} MB", f"<= {TARGETS['rss_mb']:.0f} MB"),
        ("peak RSS (VmHWM)", f"{child_result['hwm_mb']:.0f} MB", "-"),
        (
            f"get_hierarchy_level median/p95 (n={len(hier)})",
            f"{statistics.median(hier):.3f} / {percentile(hier, 95):.3f} ms",
            f"<= {TARGETS['hier_ms']} ms",
        ),
        (
            f"get_temporal_data median/p95 (n={len(temporal)})",
            f"{statistics.median(temporal):.3f} / {percentile(temporal, 95):.3f} ms",
            f"<= {TARGETS['temporal_ms']} ms",
        ),
        (
            f"get_temporal_data all {child_result['all_runs_rows']:,} runs",
            f"{child_result['all_runs_ms']:.2f} ms",
            "-",
        ),
    ]
    checks = {
        "cold load": child_result["load_s"] <= TARGETS["load_s"],
        "RSS": child_result["rss_mb"] <= TARGETS["rss_mb"],
        "hierarchy p95": percentile(hier, 95) <= TARGETS["hier_ms"],
        "temporal p95": percentile(temporal, 95) <= TARGETS["temporal_ms"],
    }
    width = max(len(r[0]) for r in rows)
    mwidth = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'measured':<{mwidth}}  target")
    print("-" * (width + mwidth + 14))
    for name, measured, target in rows:
        print(f"{name:<{width}}  {measured:<{mwidth}}  {target}")
    print("-" * (width + mwidth + 14))
    print("all targets met" if all(checks.values()) else f"MISSED: {[k for k, v in checks.items() if not v]}")
    label = f"{objects:,} objects"
    emit("inventory", f"snapshot cold load ({label})", f"{child_result['load_s']:.3f} s", "<= 1 s", checks["cold load"])
    emit("inventory", "RSS after load", f"{child_result['rss_mb']:.0f} MB", "<= 400 MB", checks["RSS"])
    emit("inventory", "snapshot write", f"{t_write:.2f} s", "", None, f"{size_mb:.1f} MB parquet")
    emit(
        "inventory",
        "get_hierarchy_level median / p95",
        f"{statistics.median(hier):.3f} / {percentile(hier, 95):.3f} ms",
        "p95 <= 5 ms",
        checks["hierarchy p95"],
    )
    emit(
        "inventory",
        "get_temporal_data median / p95",
        f"{statistics.median(temporal):.3f} / {percentile(temporal, 95):.3f} ms",
        "p95 <= 20 ms",
        checks["temporal p95"],
    )
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
