"""Print a run's metrics from its extraction outputs: ``python -m src.analytics EXTRACTED_DIR [--json]``.

Exit status: 0 on success, 2 when the directory is not a readable extracted run (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from src.analytics.loading import AnalysisInputError, load_extracted
from src.analytics.metrics import compute_metrics
from src.analytics.moment_store import moment_settings
from src.analytics.moments import find_moments, load_track_points
from src.config import ConfigError, Settings

EXIT_BAD_INPUT = 2
MOMENTS_SHOWN = 10


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m src.analytics", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="an extracted run: frames.csv, detections.csv, tracking.csv, …")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--rolling-window", type=float, default=1.0, metavar="S", help="rolling FPS window (s)")
    parser.add_argument("--drop-factor", type=float, default=2.0, metavar="F", help="drop: gap > F × median")
    args = parser.parse_args(argv)
    try:
        thresholds = moment_settings(Settings.from_env())  # the BAGBOARD_MOMENT_* settings, as the app reads them
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        extracted = load_extracted(args.directory)
        data = compute_metrics(
            extracted.frames_df,
            extracted.detections_df,
            extracted.tracking_df,
            rolling_window_s=args.rolling_window,
            drop_factor=args.drop_factor,
        )
        moments = find_moments(data, load_track_points(args.directory), thresholds)
    except (AnalysisInputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = {
        "directory": str(args.directory),
        **data.summary(),
        "moment_settings": thresholds.to_dict(),
        "moments": [moment.to_dict() for moment in moments],
    }
    print(json.dumps(summary, indent=2) if args.json else format_table(summary))
    return 0


def format_table(summary: dict[str, Any]) -> str:
    """Return the summary as aligned 'label  value' lines for a terminal."""
    counts = summary["counts"]
    topic = f" on {counts['frame_topic']}" if counts.get("frame_topic") else ""
    latency = ", ".join(
        f"{label} {_num(summary[key], 1)}"
        for label, key in (
            ("mean", "mean_detection_latency_ms"),
            ("p50", "latency_p50_ms"),
            ("p95", "latency_p95_ms"),
            ("p99", "latency_p99_ms"),
        )
    )
    classes = ", ".join(f"{name} {count:,}" for name, count in summary["class_counts"].items()) or "—"
    rows = [
        ("run", summary["directory"]),
        ("frames", f"{counts['frame_messages']:,}{topic}, {_num(counts['duration_s'], 1)} s"),
        ("mean frame FPS", _num(summary["mean_frame_fps"], 2)),
        ("frame drops", f"{counts['frame_drops']:,} ({_num(counts['frame_drop_time_s'], 2)} s in total)"),
        ("detections", f"{counts['detections']:,} in {counts['detection_messages']:,} messages"),
        ("mean detection FPS", _num(summary["mean_detection_fps"], 2)),
        ("latency (ms)", latency),
        ("tracks", f"{counts['tracks']:,} in {counts['tracking_messages']:,} messages"),
        ("avg track lifetime (s)", _num(summary["avg_track_lifetime"], 2)),
        ("classes", classes),
        *(("warning", warning) for warning in summary["warnings"]),
        ("moments", _count_shown(len(summary["moments"]))),
        *(
            (f"  {moment['t_s']:9.2f} s", f"{moment['kind']}: {moment['reason']}")
            for moment in summary["moments"][:MOMENTS_SHOWN]
        ),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _count_shown(count: int) -> str:
    """Return how many moments there are and how many are listed."""
    if not count:
        return "—"
    return f"{count:,}" + (f", the best {MOMENTS_SHOWN} below" if count > MOMENTS_SHOWN else ", below")


def _num(value: float | None, digits: int) -> str:
    """Return value with digits decimals, or '—' when there is none."""
    return "—" if value is None else f"{value:,.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
