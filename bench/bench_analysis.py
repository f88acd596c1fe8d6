"""Benchmark one run's analysis: 100,000 frames and 1,000,000 detections from CSV to metrics and figures.

Run: .venv/bin/python bench/bench_analysis.py [--frames 100000] [--per-message 10] [--repeat 3] [--profile]

1. Writes a synthetic extracted run the way the extractor does (frames.csv, detections.csv, tracking.csv plus the
   JSON files) into a temp dir, cached by size and seed: 30 Hz frames with single misses and a few long gaps,
   one detection message per frame with --per-message detections each, and a tracking message per frame
   with as many tracks (ids living 2-12 s).
2. Times load_extracted, compute_metrics and build_all_figures (the five charts), median of --repeat runs, against
   the target of TARGET_S in total; then, for information, writing and reading the on-disk cache and
   serialising the figures as Dash would.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import emit

from src.analytics import build_all_figures, compute_metrics, load_extracted
from src.analytics.cache import fingerprint, parameters, read_cache, write_cache
from src.analytics.moments import find_moments, load_track_points

TARGET_S = 1.5
MOMENTS_TARGET_S = 0.5  # on top of the analysis: reading the track columns it needs and finding the moments
CACHE_DIR = Path(tempfile.gettempdir()) / "bagboard-bench-analysis-v2"  # bump when the CSV contract changes
T0_NS = 1_715_000_000_000_000_000
PERIOD_NS = 1_000_000_000 // 30
CLASSES = np.array(["car", "pedestrian", "cyclist", "truck", "bus"])


def synthetic_run(directory: Path, frames: int, per_message: int, seed: int = 7) -> Path:
    """Write an extracted run of `frames` frames into directory (reused when already there); return it."""
    marker = directory / ".complete"
    if marker.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # 30 Hz with 1 ms jitter; 0.3 % single misses and 20 gaps of 0.5-2 s make the frame drops.
    slots = np.arange(int(frames * 1.01) + 200)
    keep = rng.random(slots.size) > 0.003
    stamps = T0_NS + slots * PERIOD_NS + rng.integers(-1_000_000, 1_000_000, slots.size)
    stamps = stamps[keep][:frames]
    for at in rng.choice(frames, 20, replace=False):
        stamps[at:] += rng.integers(500_000_000, 2_000_000_000)
    n = stamps.size
    image_recv = stamps + rng.integers(2_000_000, 8_000_000, n)
    write = _writer(directory)
    write(
        "frames.csv",
        {
            "bag": np.full(n, "drive_0.mcap"),
            "topic": np.full(n, "/camera/front/image_raw"),
            "stamp_ns": stamps,
            "receive_ns": image_recv,
            "frame_index": np.arange(n),
        },
    )
    rows = n * per_message
    message_stamp = np.repeat(stamps, per_message)
    latency = rng.gamma(6.0, 9.0, n).astype(np.int64) * 1_000_000 + 15_000_000  # ~70 ms with a long tail
    det_recv = np.repeat(stamps + latency, per_message)
    boxes = _boxes(rng, rows)
    write(
        "detections.csv",
        {
            "stamp_ns": message_stamp,
            "receive_ns": det_recv,
            "class_id": CLASSES[rng.integers(0, CLASSES.size, rows)],
            **boxes,
        },
    )
    slot = np.tile(np.arange(per_message), n)
    message = np.repeat(np.arange(n), per_message)
    life = 60 + (slot * 37) % 300  # frames per track: 2-12 s at 30 Hz
    track_id = slot * 1_000_000 + (message + slot * 13) // life
    write(
        "tracking.csv",
        {
            "stamp_ns": message_stamp,
            "receive_ns": det_recv + 4_000_000,
            "track_id": track_id,
            "class_id": CLASSES[track_id % CLASSES.size],
            **boxes,
        },
    )
    for name, doc in (
        ("detections.json", {"topic": "/perception/detections", "messages": n}),
        ("tracking.json", {"topic": "/perception/tracks", "messages": n}),
        ("metadata.json", {"source_bags": ["drive_0.mcap"], "frames": n, "detections": rows, "warnings": []}),
    ):
        (directory / name).write_text(json.dumps(doc), encoding="utf-8")
    marker.touch()
    return directory


def _boxes(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """Return score and box columns rounded like an extractor prints them."""
    return {
        "score": rng.random(rows).round(3),
        "cx": (rng.random(rows) * 1920).round(1),
        "cy": (rng.random(rows) * 1080).round(1),
        "w": (rng.random(rows) * 300 + 10).round(1),
        "h": (rng.random(rows) * 300 + 10).round(1),
    }


def _writer(directory: Path) -> Callable[[str, dict[str, np.ndarray]], None]:
    """Return a function writing one CSV (no quoting, as the extractor writes it)."""

    def write(name: str, columns: dict[str, np.ndarray]) -> None:
        options = pacsv.WriteOptions(quoting_style="none")
        pacsv.write_csv(pa.table(columns), directory / name, write_options=options)

    return write


def timed(func: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Return the wall times of repeat calls and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return times, result


def stage(func: Callable[[], Any]) -> tuple[float, float, Any]:
    """Return wall time, CPU time (all threads of this process) and the result of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--per-message", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print the top functions of one full run")
    args = parser.parse_args()

    started = time.perf_counter()
    run = synthetic_run(CACHE_DIR / f"run-{args.frames}x{args.per_message}", args.frames, args.per_message)
    sizes = {p.name: p.stat().st_size for p in sorted(run.glob("*.csv"))}
    print(
        f"synthetic run in {run} ({time.perf_counter() - started:.1f} s): "
        + ", ".join(f"{name} {size / 1e6:.0f} MB" for name, size in sizes.items())
    )

    names = ("load", "compute_metrics", "build 5 figures")
    walls: dict[str, list[float]] = {name: [] for name in names}
    cpus: dict[str, list[float]] = {name: [] for name in names}
    totals, total_cpus = [], []
    moment_walls: list[float] = []
    moment_cpus: list[float] = []
    for _ in range(args.repeat):
        load, load_cpu, extracted = stage(lambda: load_extracted(run))
        compute, compute_cpu, data = stage(
            lambda e=extracted: compute_metrics(e.frames_df, e.detections_df, e.tracking_df)
        )
        draw, draw_cpu, figures = stage(lambda d=data: build_all_figures(d))
        for name, wall, cpu in zip(names, (load, compute, draw), (load_cpu, compute_cpu, draw_cpu), strict=True):
            walls[name].append(wall)
            cpus[name].append(cpu)
        totals.append(load + compute + draw)
        total_cpus.append(load_cpu + compute_cpu + draw_cpu)
        moments, moments_cpu, found = stage(lambda d=data: find_moments(d, load_track_points(run)))
        moment_walls.append(moments)
        moment_cpus.append(moments_cpu)

    counts = data.counts
    print(
        f"{counts['frame_messages']:,} frames, {counts['detections']:,} detections in "
        f"{counts['detection_messages']:,} messages, {counts['tracking_rows']:,} tracking rows, "
        f"{counts['tracks']:,} tracks, {counts['frame_drops']:,} frame drops"
    )
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"{'stage':<34}{'median':>10}{'min':>10}{'CPU':>10}")
    for name in names:
        print(
            f"{name:<34}{statistics.median(walls[name]):>9.3f}s{min(walls[name]):>9.3f}s"
            f"{statistics.median(cpus[name]):>9.3f}s"
        )
    total = statistics.median(totals)
    verdict = "PASS" if total <= TARGET_S else "MISS"
    label = "total (load + compute + figures)"
    print(
        f"{label:<34}{total:>9.3f}s{min(totals):>9.3f}s{statistics.median(total_cpus):>9.3f}s"
        f"   target {TARGET_S:.1f}s (median wall) {verdict}"
    )

    emit(
        "analysis",
        f"{counts['detections']:,} detections / {counts['frame_messages']:,} frames -> metrics + figures",
        f"{total:.2f} s",
        f"<= {TARGET_S:.1f} s",
        total <= TARGET_S,
        f"CPU {statistics.median(total_cpus):.2f} s",
    )

    moment_time = statistics.median(moment_walls)
    kinds = sorted({moment.kind for moment in found})
    print(
        f"{'moments (track columns + find)':<34}{moment_time:>9.3f}s{min(moment_walls):>9.3f}s"
        f"{statistics.median(moment_cpus):>9.3f}s   target {MOMENTS_TARGET_S:.1f}s "
        f"{'PASS' if moment_time <= MOMENTS_TARGET_S else 'MISS'}: {len(found)} moments ({', '.join(kinds)})"
    )
    emit(
        "analysis",
        f"moments of the same run, on top of the analysis ({len(found)} found)",
        f"{moment_time:.2f} s",
        f"<= {MOMENTS_TARGET_S:.1f} s",
        moment_time <= MOMENTS_TARGET_S,
        f"CPU {statistics.median(moment_cpus):.2f} s; kinds: {', '.join(kinds)}",
    )

    # For information: the cache round trip and what the browser receives.
    analysis = Path(tempfile.mkdtemp(prefix="bench-analysis-cache-"))
    inputs = fingerprint(run)
    write_times, _ = timed(lambda: write_cache(analysis, data, inputs), args.repeat)
    read_times, cached = timed(lambda: read_cache(analysis, inputs, parameters(1.0, 2.0)), args.repeat)
    assert cached is not None and cached.data.counts == counts
    json_times, payloads = timed(lambda: [figure.to_json() for figure in figures.values()], args.repeat)
    points = sum(len(trace.x) for figure in figures.values() for trace in figure.data if trace.x is not None)
    print(f"{'cache write (metrics, parquet, summary)':<34}{statistics.median(write_times):>9.3f}s")
    print(f"{'cache read (current fingerprint)':<34}{statistics.median(read_times):>9.3f}s")
    print(
        f"{'figures to JSON (Dash payload)':<34}{statistics.median(json_times):>9.3f}s"
        f"   {sum(map(len, payloads)) / 1e3:,.0f} kB, {points:,} points in 5 figures"
    )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        extracted = load_extracted(run)
        build_all_figures(compute_metrics(extracted.frames_df, extracted.detections_df, extracted.tracking_df))
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
