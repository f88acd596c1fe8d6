"""Generate the whole demo: raw bags, ML samples and a local export, in parallel per run."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from rosbags.typesys import Stores
from rosbags.typesys.store import Typestore

from src.demo.bags import BagResult, write_run_bags
from src.demo.layout import Labels, RunPlan, plan_runs
from src.demo.samples import write_run_samples, write_tracking
from src.demo.sim import simulate
from src.rosmsgs import vision_typestore

EXPORT_SOURCE = "demo-labelling"


@dataclass(frozen=True)
class DemoSummary:
    """What generate_demo wrote; bags are storage files, in-flight objects excluded."""

    runs: int
    bags: int
    ros1_bags: int
    ros2_bags: int
    samples: int  # images in the ML bucket; the export's are in export_samples
    bytes_raw: int
    bytes_ml: int
    export_id: str
    seconds: float
    export_samples: int = 0
    bytes_export: int = 0
    in_flight: tuple[str, ...] = ()  # raw-bucket keys still "being written"
    bag_results: tuple[BagResult, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class _RunResult:
    bags: list[BagResult]
    in_flight: list[str]
    samples: int
    sample_bytes: int
    exported: bool


def generate_demo(
    raw_root: Path,
    ml_root: Path,
    data_root: Path,
    size: str = "small",
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
    *,
    workers: int | None = None,
) -> DemoSummary:
    """Write the demo for size and seed into the local bucket roots and data_root."""
    started = time.perf_counter()
    raw_root, ml_root, data_root = Path(raw_root), Path(ml_root), Path(data_root)
    runs = plan_runs(size, seed)
    export_id, created_at = _export_identity(runs, size, seed)
    export_root = data_root / "ml" / "exports" / export_id
    if workers is None:
        # Process start-up costs more than a tiny demo takes; tests stay in-process.
        workers = 1 if size == "tiny" else _cpu_count()
    results = _run_all(runs, raw_root, ml_root, export_root, workers, progress)

    exported = [run for run in runs if run.labels is Labels.EXPORTED]
    export_samples = sum(r.samples for r in results if r.exported)
    write_tracking(
        data_root,
        export_id,
        {
            "created_at": created_at,
            "source": EXPORT_SOURCE,
            "coordinates": [run.coord.to_path_str() for run in exported],
            "sample_count": export_samples,
            "uploaded": False,
            "uploaded_at": None,
        },
    )
    bags = sorted((bag for r in results for bag in r.bags), key=lambda b: b.key)
    in_flight = tuple(sorted(key for r in results for key in r.in_flight))
    return DemoSummary(
        runs=len(runs),
        bags=len(bags),
        ros1_bags=sum(bag.fmt == "ros1" for bag in bags),
        ros2_bags=sum(bag.fmt == "ros2" for bag in bags),
        samples=sum(r.samples for r in results if not r.exported),
        bytes_raw=_size(raw_root, {run.coord.to_path_str() for run in runs if run.has_bags}),
        bytes_ml=sum(r.sample_bytes for r in results if not r.exported),
        export_id=export_id,
        seconds=round(time.perf_counter() - started, 3),
        export_samples=export_samples,
        bytes_export=sum(r.sample_bytes for r in results if r.exported),
        in_flight=in_flight,
        bag_results=tuple(bags),
    )


def build_run(run: RunPlan, raw_root: Path, ml_root: Path, export_root: Path) -> _RunResult:
    """Simulate one run and write its bags and samples; runs in a worker process."""
    frames = simulate(run)
    bags: list[BagResult] = []
    in_flight: list[str] = []
    if run.has_bags:
        bags, in_flight = write_run_bags(run, frames, raw_root / run.coord.to_path_str(), _stores())
    exported = run.labels is Labels.EXPORTED
    samples, sample_bytes = write_run_samples(run, frames, export_root if exported else ml_root)
    return _RunResult(bags, in_flight, samples, sample_bytes, exported)


@cache
def _stores() -> dict[str, Typestore]:
    """Return the ROS1 and ROS2 typestores, built once per process."""
    return {"ros1": vision_typestore(Stores.ROS1_NOETIC), "ros2": vision_typestore(Stores.ROS2_HUMBLE)}


def _run_all(
    runs: list[RunPlan],
    raw_root: Path,
    ml_root: Path,
    export_root: Path,
    workers: int,
    progress: Callable[[str], None] | None,
) -> list[_RunResult]:
    """Build every run, in worker processes when workers > 1; results keep plan order."""
    report = progress or (lambda _message: None)
    if workers <= 1:
        results = []
        for done, run in enumerate(runs, 1):
            results.append(build_run(run, raw_root, ml_root, export_root))
            report(_progress_line(done, len(runs), run, results[-1]))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(build_run, run, raw_root, ml_root, export_root): run for run in runs}
        for done, future in enumerate(as_completed(futures), 1):
            report(_progress_line(done, len(runs), futures[future], future.result()))
        # Dicts keep insertion order, so this is plan order whatever the completion order was.
        return [future.result() for future in futures]


def _cpu_count() -> int:
    """Return the CPUs this process may use (affinity-aware where the OS supports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _progress_line(done: int, total: int, run: RunPlan, result: _RunResult) -> str:
    """Describe one finished run for the progress callback."""
    where = "export" if result.exported else "ml"
    bags = f"{len(result.bags)} {run.fmt} bags"
    return f"[{done}/{total}] {run.coord}: {bags}, {result.samples} samples ({where})"


def _export_identity(runs: list[RunPlan], size: str, seed: int) -> tuple[str, str]:
    """Return a deterministic export id and created_at: the morning after the last recording."""
    last = max(run.start_ns for run in runs) // 10**9
    created = (datetime.fromtimestamp(last, UTC) + timedelta(days=1)).replace(hour=9, minute=12, second=0)
    digest = hashlib.sha256(f"export/{size}/{seed}".encode()).hexdigest()[:6]
    return f"export-{created:%Y%m%d-%H%M%S}-{digest}", created.isoformat().replace("+00:00", "Z")


def _size(root: Path, prefixes: set[str]) -> int:
    """Return the bytes under root/prefix for each run prefix (other content in root is ignored)."""
    total = 0
    for prefix in prefixes:
        for path in (root / prefix).rglob("*"):
            if path.is_file():
                total += path.stat().st_size
    return total
