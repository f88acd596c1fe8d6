"""Container figures: image size, build time cold and cached, time to healthy, docker runner vs local runner.

The image is built on the local debootstrap base (tests/containers/images.py), as the container tests do. The
runners are timed on the same extraction through ExtractionService, interleaved, medians compared: the tiny demo's
largest run and a --mb MiB MCAP bag (bench_extraction's writer). Target: docker <= 1.15x local + 2 s.

Run: .venv/bin/python bench/bench_containers.py [--mb 1024] [--repeat 3] [--cold-base] [--no-cold-build]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from _report import emit
from bench_extraction import ensure_bag

from src.demo.generate import generate_demo
from src.jobs.base import NullContext
from src.models import RunCoordinate
from src.services.extraction import ExtractionService, ExtractorSettings
from src.services.local_state import LocalStateService
from tests.containers.engine import FAST_HEALTH, docker, remove, run_app, unique, wait_healthy
from tests.containers.images import build_app, ensure_base, forget_base

TAG = "bagboard:bench"
BIG_COORD = "bench/north/field/tw/lb/2024-01-01T00-00-00"


def main() -> int:
    """Build, start and time; print a table and RESULT lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the large bag in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="timed extractions per runner and bag (default 3)")
    parser.add_argument("--cold-base", action="store_true", help="debootstrap the base again (about 1-2 min)")
    parser.add_argument("--no-cold-build", action="store_true", help="skip the --no-cache build (about 3 min)")
    args = parser.parse_args()

    if args.cold_base:
        forget_base()
    started = time.monotonic()
    base = ensure_base()
    base_s = time.monotonic() - started
    cold = None if args.no_cold_build else build_app(base, TAG, no_cache=True)
    cached = build_app(base, TAG)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", TAG).stdout)
    print(f"base image: {base} ready in {base_s:.0f} s{' (debootstrap)' if args.cold_base else ''}")
    print(f"app image:  {size / 1e6:.0f} MB; build cold {_s(cold)}, cached {cached:.1f} s")
    healthy_default, healthy_fast = time_to_healthy()
    print(f"healthy after {healthy_default:.1f} s (image's 10 s interval), {healthy_fast:.1f} s (1 s interval)")

    with tempfile.TemporaryDirectory(prefix="bagboard-bench-containers-") as tmp:
        root = Path(tmp)
        demo_coord = demo_run(root)
        ensure_bag(root / "data" / "raw" / BIG_COORD, "mcap", args.mb)
        local = LocalStateService(root / "data")
        figures = {}
        for label, coord, repeat in (
            ("demo run", demo_coord, args.repeat * 2),
            (f"{args.mb} MiB bag", BIG_COORD, args.repeat),
        ):
            figures[label] = compare(local, RunCoordinate.from_path(coord), repeat)  # fmt: skip

    emit("containers", "app image size (debootstrap base)", f"{size / 1e6:.0f} MB")
    emit("containers", "app image build, cold (--no-cache)", _s(cold), note=f"base ready in {base_s:.0f} s")
    emit("containers", "app image build, cached", f"{cached:.1f} s")
    emit("containers", "start to healthy", f"{healthy_default:.1f} s", note=f"{healthy_fast:.1f} s at 1 s interval")
    for label, (local_s, docker_s) in figures.items():
        ratio, extra = docker_s / local_s, docker_s - local_s
        ok = docker_s <= 1.15 * local_s + 2.0
        print(f"{label}: local {local_s:.2f} s, docker {docker_s:.2f} s: {ratio:.2f}x, +{extra:.2f} s")
        emit("containers", f"docker runner vs local, {label}", f"{ratio:.2f}x (+{extra:.2f} s)",
             "<= 1.15x + 2 s", ok, f"local {local_s:.2f} s, docker {docker_s:.2f} s")  # fmt: skip
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work skews every timing)")
    return 0


def _s(seconds: float | None) -> str:
    return "skipped" if seconds is None else f"{seconds:.0f} s"


def time_to_healthy() -> tuple[float, float]:
    """Return seconds from docker run to healthy: with the image's interval, and polled every second."""
    volume = unique("bench-data")
    docker("volume", "create", volume)
    try:
        times = []
        for args in ((), FAST_HEALTH):
            name = unique("bench-health")
            started = time.monotonic()
            run_app(name, volume, args=args, image=TAG)
            wait_healthy(name)
            times.append(time.monotonic() - started)
            remove(name)
        return times[0], times[1]
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def demo_run(root: Path) -> str:
    """Generate the tiny demo, 'download' its largest run into root/data/raw and return its coordinate."""
    generate_demo(root / "raw", root / "ml", root / "demo-data", size="tiny", seed=7)
    bags = [p for p in (root / "raw").rglob("*") if p.suffix in (".bag", ".mcap")]
    bag = max(bags, key=lambda p: p.stat().st_size)
    coord = bag.parent.relative_to(root / "raw").as_posix()
    RunCoordinate.from_path(coord)
    target = root / "data" / "raw" / coord
    target.mkdir(parents=True)
    shutil.copy2(bag, target / bag.name)
    return coord


def compare(local: LocalStateService, coord: RunCoordinate, repeat: int) -> tuple[float, float]:
    """Extract coord with each runner repeat times, interleaved after a warm-up; return the medians (s)."""
    services = {
        runner: ExtractionService(local, ExtractorSettings(runner=runner, image=TAG, memory="4g", cpus=2.0))
        for runner in ("local", "docker")
    }
    for service in services.values():
        service.execute_extraction(coord, NullContext())  # page cache, imports, image layers
    times: dict[str, list[float]] = {"local": [], "docker": []}
    for _ in range(repeat):
        for runner, service in services.items():
            started = time.perf_counter()
            service.execute_extraction(coord, NullContext())
            times[runner].append(time.perf_counter() - started)
    print(f"  {coord}: {json.dumps({k: [round(v, 2) for v in vs] for k, vs in times.items()})}")
    return statistics.median(times["local"]), statistics.median(times["docker"])


if __name__ == "__main__":
    sys.exit(main())
