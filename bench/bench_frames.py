"""Time reading one frame by time from a 1 GiB bag: by frame_index.csv position vs iterating the bag up to it.

Writes (into a temp dir, removed afterwards unless --keep) the extraction bench's 640x480 rgb8 run as an MCAP with
zstd chunks and as a ROS1 bag, extracts each, warms the page cache, then for --frames random frame times measures
frame → decoded and JPEG-encoded image: (a) the frame inspector's way (FrameService: frame_index position, one
chunk read and decompressed), (b) rosbags reading only the frame's log time (the fallback without positions),
(c) iterating the bag's frames topic from the start up to that time (--scan of the frames, fewer: it is slow).

Run: .venv/bin/python bench/bench_frames.py [--mb 1024] [--frames 60] [--scan 6] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import emit
from bench_extraction import DET_TOPIC, HEIGHT, IMAGE_TOPIC, TRACK_TOPIC, WIDTH
from bench_extraction import write_bag as write_extraction_bag
from rosbags.highlevel import AnyReader

from src.extraction import extract_run
from src.extraction.seek import read_message
from src.imaging.decode import decode
from src.imaging.encode import MAX_BYTES, encode_frame
from src.models import RunCoordinate
from src.services.frames import FrameService
from src.services.local_state import LocalStateService

MB = 1024 * 1024
ZSTD_SAVING = 2
P95_TARGET_MS = 60.0
RATIO_TARGET = 20.0
TOPICS = {
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    DET_TOPIC: "vision_msgs/msg/Detection2DArray",
    TRACK_TOPIC: "vision_msgs/msg/Detection2DArray",
}


def write_bag(path: Path, fmt: str, target_bytes: int) -> int:
    """Write the extraction bench's messages, as an MCAP with zstd chunks or a ROS1 bag; return the frames."""
    if fmt == "ros1":
        return write_extraction_bag(path, fmt, target_bytes)
    # zstd finds the shifted copies of the noise between neighbouring frames and halves the file:
    # twice the frames make a bag of about the size asked for.
    return write_extraction_bag(path, fmt, target_bytes * ZSTD_SAVING, zstd=True)


def warm(root: Path) -> None:
    """Read every file under root once, so the page cache holds the bag (the target says: cache warm)."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb", buffering=0) as fh:
                while fh.read(8 * MB):
                    pass


def scan_to(bag: Path, log_ns: int, ros1: bool) -> bytes:
    """Iterate the frames topic from the start until the frame received at log_ns; decode and encode it."""
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == IMAGE_TOPIC]
        for _conn, t, raw in reader.messages(connections=conns):
            if t >= log_ns:
                return encode_frame(decode(bytes(raw), TOPICS[IMAGE_TOPIC], ros1)).data
    raise LookupError(log_ns)


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:.1f} ms, p95 {percentile(values, 95) * 1e3:.1f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_format(root: Path, fmt: str, mb: int, frames_n: int, scans: int) -> dict[str, object]:
    """Measure one bag format; return its figures."""
    coord = RunCoordinate("bench", "frames", "f", "t", "l", fmt)
    local = LocalStateService(root / "data")
    raw = local.raw_path(coord)
    raw.mkdir(parents=True, exist_ok=True)
    bag = raw / ("bench.bag" if fmt == "ros1" else "bench")
    started = time.perf_counter()
    frames = write_bag(bag, fmt, mb * MB)
    written = time.perf_counter() - started
    extract_run(raw, local.processed_path(coord))
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    warm(raw)
    service = FrameService(local)
    run = service.run_frames(coord)
    rng = random.Random(7)
    positions = [rng.randrange(run.count) for _ in range(frames_n)]
    service.image(coord, int(run.frame_index[0]))  # imports, typestores: paid once per process
    seek, sizes = [], []
    for position in positions:
        frame_index = int(run.frame_index[position])
        service._images.clear()  # time the work, not the in-process caches
        service._raw.clear()
        t = time.perf_counter()
        view = service.frame_view(coord, t_s=(int(run.stamp_ns[position]) - run.t0_ns) / 1e9)
        image, _version = service.image(coord, view.frame_index)
        seek.append(time.perf_counter() - t)
        sizes.append(len(image.data))
        assert view.frame_index == frame_index and view.problem is None
    by_time = []
    for position in positions[: max(scans, 3)]:
        where = run.locations[int(run.frame_index[position])]
        unindexed = type(where)(where.bag, where.storage, where.topic, where.log_ns, where.stamp_ns)
        t = time.perf_counter()
        raw_message, _ = read_message(raw / where.bag, unindexed)
        encode_frame(decode(raw_message, TOPICS[IMAGE_TOPIC], fmt == "ros1"))
        by_time.append(time.perf_counter() - t)
    scan = []
    for position in positions[:scans]:
        t = time.perf_counter()
        scan_to(bag, int(run.receive_ns[position]), fmt == "ros1")
        scan.append(time.perf_counter() - t)
    # Scans were timed on the first positions only: compare with the seeks of the same frames.
    same = seek[:scans]
    ratio = statistics.median(scan) / statistics.median(same)
    label = "MCAP, zstd chunks" if fmt == "mcap" else "ROS1"
    print(f"{label}: {size / MB:.0f} MiB, {frames} frames {WIDTH}x{HEIGHT} rgb8 (written in {written:.0f} s)")
    print(f"  by position (FrameService, view + image): {ms(seek)} over {len(seek)} random frames")
    print(f"  by log time through rosbags (no positions): {ms(by_time)}")
    print(f"  iterating up to the frame: {ms(scan)} over {len(scan)} frames; ratio {ratio:.0f}x")
    print(f"  JPEG per frame: max {max(sizes) / 1e3:.0f} kB, median {statistics.median(sizes) / 1e3:.0f} kB")
    p95 = percentile(seek, 95) * 1e3
    emit(
        "frames",
        f"frame by time from a {size / MB:.0f} MiB {label} bag, decoded + JPEG-encoded (p95)",
        f"{p95:.1f} ms",
        f"<= {P95_TARGET_MS:.0f} ms",
        p95 <= P95_TARGET_MS,
        f"median {statistics.median(seek) * 1e3:.1f} ms; rosbags by log time {statistics.median(by_time) * 1e3:.0f} ms",
    )
    emit(
        "frames",
        f"frame by position vs iterating the {label} bag up to it",
        f"{ratio:.0f}x faster",
        f">= {RATIO_TARGET:.0f}x",
        ratio >= RATIO_TARGET,
        f"iteration median {statistics.median(scan):.2f} s over {len(scan)} random frames",
    )
    emit(
        "frames",
        f"bytes per {WIDTH}x{HEIGHT} frame sent to the browser ({label}, camera noise: the worst case for JPEG)",
        f"{max(sizes) / 1e3:.0f} kB max",
        f"<= {MAX_BYTES / 1e3:.0f} kB",
        max(sizes) <= MAX_BYTES,
    )
    shutil.rmtree(raw, ignore_errors=True)  # one 1 GiB bag on disk at a time
    return {"p95_ms": p95, "ratio": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=60, help="random frames read by position (default 60)")
    parser.add_argument("--scan", type=int, default=6, help="of those, frames also found by iterating (default 6)")
    parser.add_argument("--formats", nargs="*", default=["mcap", "ros1"], choices=["mcap", "ros1"])
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bagboard-bench-frames-"))
    try:
        results = {fmt: bench_format(root, fmt, args.mb, args.frames, args.scan) for fmt in args.formats}
        print(json.dumps(results))
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
