"""python -m src.analytics EXTRACTED_DIR [--json]: the summary as JSON or a table; bad input exits 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.analytics.__main__ import main
from tests.analytics.helpers import write_csv, write_run

ROOT = Path(__file__).resolve().parents[2]


def test_json_summary(tmp_path: Path, capsys):
    run = write_run(tmp_path / "run")
    assert main([str(run), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mean_detection_latency_ms"] == pytest.approx(60.0)
    assert summary["latency_p99_ms"] == pytest.approx(99.2)
    assert summary["total_tracks"] == 2 and summary["avg_track_lifetime"] == pytest.approx(0.35)
    assert summary["mean_frame_fps"] == pytest.approx(8.0) and summary["frame_drop_count"] == 1
    assert summary["class_counts"] == {"car": 7, "pedestrian": 2, "truck": 1}
    assert summary["counts"]["detections"] == 10 and summary["counts"]["frame_messages"] == 17
    assert summary["parameters"] == {"rolling_window_s": 1.0, "drop_factor": 2.0}


def test_table_summary(tmp_path: Path, capsys):
    assert main([str(write_run(tmp_path / "run")), "--drop-factor", "6"]) == 0
    out = capsys.readouterr().out
    assert "mean frame FPS          8.00" in out
    assert "frame drops             0 (0.00 s in total)" in out
    assert "p95 96.0" in out and "car 7, pedestrian 2, truck 1" in out


@pytest.mark.parametrize("case", ["missing", "file", "no-frames", "bad-columns", "binary", "ragged"])
def test_bad_directory_is_one_line_and_exit_2(tmp_path: Path, capsys, case):
    target = tmp_path / "run"
    if case == "file":
        target.write_text("x")
    elif case == "no-frames":
        target.mkdir()
    elif case == "bad-columns":
        write_run(target)
        write_csv(target / "detections.csv", ("stamp", "class"), [(1, "car")])
    elif case == "binary":
        write_run(target)
        (target / "frames.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    elif case == "ragged":  # cut off mid-write
        write_run(target)
        with (target / "tracking.csv").open("a") as handle:
            handle.write("1700000000000000000,17")
    assert main([str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1


def test_runs_as_a_module(tmp_path: Path):
    run = write_run(tmp_path / "run")
    done = subprocess.run(
        [sys.executable, "-m", "src.analytics", str(run), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_tracks"] == 2
    bad = subprocess.run(
        [sys.executable, "-m", "src.analytics", str(tmp_path / "nope")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'nope'}: not a directory"
