"""Command line: python -m src.demo OUT [--size small] [--seed 7] writes OUT/raw, OUT/ml, OUT/data."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.demo.generate import generate_demo
from src.demo.layout import SIZES


def main(argv: list[str] | None = None) -> int:
    """Generate the demo into one output folder and print its summary."""
    parser = argparse.ArgumentParser(prog="python -m src.demo", description=__doc__)
    parser.add_argument("out", type=Path, help="folder for raw/ (raw bucket), ml/ (ML bucket), data/")
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs available)")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    args = parser.parse_args(argv)
    out: Path = args.out
    summary = generate_demo(
        out / "raw",
        out / "ml",
        out / "data",
        size=args.size,
        seed=args.seed,
        progress=None if args.quiet else print,
        workers=args.workers,
    )
    mb = 1024 * 1024
    print(
        f"{summary.runs} runs, {summary.bags} bags ({summary.ros1_bags} ROS1, {summary.ros2_bags} ROS2), "
        f"{summary.samples} samples + {summary.export_samples} in export {summary.export_id}; "
        f"raw {summary.bytes_raw / mb:.1f} MiB, ml {summary.bytes_ml / mb:.1f} MiB, {summary.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
