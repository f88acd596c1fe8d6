"""Command line of the bag extractor: python -m src.extraction IN_DIR OUT_DIR [--frames-topic T] [...]."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from src.extraction.errors import ExtractionCancelled, ExtractionError
from src.extraction.extract import extract_run

EXIT_ERROR = 1
EXIT_CANCELLED = 130
DESCRIPTION = (
    "Extract a run folder's ROS1/ROS2 bags into frames.csv, detections.csv, tracking.csv,\n"
    "detections.json, tracking.json and metadata.json (docs/extraction-contract.md)."
)
EPILOG = """\
progress: JSON lines on stderr, {"bags_done": 1, "bags_total": 3, "frames": 812}
success:  exit 0, one JSON summary line on stdout
failure:  exit 1 (2: bad arguments, 130: cancelled) and one line "error: ..." on stderr
"""


def main(argv: list[str] | None = None) -> int:
    """Run one extraction and return the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m src.extraction",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("in_dir", type=Path, help="run folder holding .bag files, ROS2 bag folders, .mcap or .db3")
    parser.add_argument("out_dir", type=Path, help="output folder; replaced as a whole when the extraction succeeds")
    for role in ("frames", "detections", "tracking"):
        disable = "" if role == "frames" else "; 'none' to skip it"
        help_text = f"{role} topic instead of the automatic choice{disable}"
        parser.add_argument(f"--{role}-topic", metavar="TOPIC", help=help_text)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one error line")
    args = parser.parse_args(argv)

    stop = threading.Event()
    _on_sigterm(stop)
    try:
        summary = extract_run(
            args.in_dir,
            args.out_dir,
            frames_topic=args.frames_topic,
            detections_topic=args.detections_topic,
            tracking_topic=args.tracking_topic,
            progress=None if args.quiet else _print_progress,
            should_cancel=stop.is_set,
        )
    except ExtractionCancelled as err:
        return _fail(str(err), EXIT_CANCELLED)
    except ExtractionError as err:
        if args.debug:
            raise
        return _fail(str(err), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_CANCELLED)
    except OSError as err:
        if args.debug:
            raise
        # Disk full, file too large, permissions: the OS's own words and the path are what an operator needs.
        where = f" ({err.filename})" if err.filename else ""
        return _fail(f"cannot read or write the files: {err.strerror or err}{where}", EXIT_ERROR)
    except Exception as err:
        if args.debug:
            raise
        return _fail(f"unexpected {type(err).__name__}: {' '.join(str(err).split())} (rerun with --debug)", EXIT_ERROR)
    print(json.dumps(summary.to_dict()), flush=True)
    return 0


def _print_progress(event: dict[str, int]) -> None:
    """Write one progress event as a JSON line on stderr."""
    print(json.dumps(event), file=sys.stderr, flush=True)


def _fail(message: str, code: int) -> int:
    """Write the one error line and return code."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


def _on_sigterm(stop: threading.Event) -> None:
    """Turn SIGTERM into a cancel request, so the temp output is removed like after any failure."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":
    raise SystemExit(main())
