"""The output folder appears complete or not at all: cancellation, failures, replacement, stale temps."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from src.extraction import OPTIONAL_OUTPUT_FILES, OUTPUT_FILES, ExtractionCancelled, ExtractionError, extract_run
from src.extraction import __main__ as cli
from src.extraction import extract as extract_module
from src.extraction import writer as writer_module
from src.extraction.writer import LOCK_NAME, atomic_output_dir, remove_stale
from tests.extraction.conftest import Demo


def _siblings(out: Path) -> list[str]:
    """Return the names next to out that belong to it (temp and old folders)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def _previous_output(out: Path) -> None:
    """Leave an earlier, complete-looking extraction in out."""
    out.mkdir(parents=True)
    for name in OUTPUT_FILES:
        (out / name).write_text("previous")


def test_cancel_midway_leaves_nothing(demo: Demo, tmp_path: Path) -> None:
    run = demo.run(splits=2)
    out = tmp_path / "out"
    polls = []

    def should_cancel() -> bool:
        polls.append(1)
        return len(polls) > 5  # after the survey, a few message batches in

    with pytest.raises(ExtractionCancelled):
        extract_run(run.path, out, should_cancel=should_cancel)
    assert not out.exists()
    assert _siblings(out) == []


def test_failure_keeps_the_previous_output(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = demo.run()
    out = tmp_path / "out"
    _previous_output(out)

    def fail(path: Path, data: dict) -> None:
        (path.parent / "half-written").write_text("x")
        raise OSError("disk full")

    monkeypatch.setattr(extract_module, "write_json", fail)
    with pytest.raises(OSError, match="disk full"):
        extract_run(run.path, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert (out / "metadata.json").read_text() == "previous"
    assert _siblings(out) == []


def test_success_replaces_the_previous_output(demo: Demo, tmp_path: Path) -> None:
    run = demo.run()
    out = tmp_path / "out"
    _previous_output(out)
    (out / "stale-extra.csv").write_text("from an older extractor")
    extract_run(run.path, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES + OPTIONAL_OUTPUT_FILES)
    assert json.loads((out / "metadata.json").read_text())["counts"]["frames"] > 0
    assert _siblings(out) == []
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # the umask's mode, not mkdtemp's private 0700


def test_bad_input_does_not_touch_the_previous_output(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.bag").write_bytes(b"garbage" * 100)
    out = tmp_path / "out"
    _previous_output(out)
    with pytest.raises(ExtractionError, match=r"x\.bag: not a ROS1 bag"):
        extract_run(tmp_path / "in", out)
    assert (out / "frames.csv").read_text() == "previous"


def test_output_never_replaces_the_input(demo: Demo, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "run"
    shutil.copytree(demo.run().path, run)
    bags = sorted(p.name for p in run.iterdir())
    for out in (run, run.parent, run / "." / ".."):
        with pytest.raises(ExtractionError, match="would replace the input"):
            extract_run(run, out)
    assert sorted(p.name for p in run.iterdir()) == bags
    # Inside the input is fine: outputs are not bags, and the temp folder is hidden.
    first = extract_run(run, run / "extracted")
    again = extract_run(run, run / "extracted")
    assert first.frames == again.frames > 0


def test_stale_temp_folders_of_killed_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead = tmp_path / ".out.tmp-dead"  # its process died: nobody holds its lock
    dead.mkdir()
    (dead / LOCK_NAME).write_text("")
    (dead / "frames.csv").write_text("partial")
    old = tmp_path / ".out.old-dead"  # killed between the two renames of a replacement
    (old / "out").mkdir(parents=True)
    live = tmp_path / ".out.tmp-live"  # an extraction running right now
    live.mkdir()
    fd = os.open(live / LOCK_NAME, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    other = tmp_path / ".other.tmp-dead"  # another run's: not ours to judge
    other.mkdir()
    try:
        removed = remove_stale(tmp_path, "out")
        assert sorted(p.name for p in removed) == [".out.old-dead", ".out.tmp-dead"]
        assert live.is_dir() and other.is_dir()
    finally:
        os.close(fd)
    with atomic_output_dir(out) as tmp:
        (tmp / "frames.csv").write_text("new")
    assert not live.exists()  # its lock is free now: the next extraction clears it
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv"]  # the lock file is gone too


def test_interrupt_while_writing_removes_the_temp_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"

    def interrupted() -> None:
        with atomic_output_dir(out) as tmp:
            (tmp / "frames.csv").write_text("partial")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert not out.exists() and _siblings(out) == []


def test_sigterm_cancels_the_cli_cleanly(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = demo.run(splits=2)
    out = tmp_path / "out"
    previous = signal.getsignal(signal.SIGTERM)
    sent = []

    def progress(event: dict[str, int]) -> None:
        if not sent:  # the job runner stops the extraction once it has started
            sent.append(event)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(cli, "_print_progress", progress)
    try:
        code = cli.main([str(run.path), str(out)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == cli.EXIT_CANCELLED
    assert not out.exists() and _siblings(out) == []


def test_chunk_rows_is_a_bound(monkeypatch: pytest.MonkeyPatch, demo: Demo, tmp_path: Path) -> None:
    # Every CsvStream flush writes at most CHUNK_ROWS rows: memory stays bounded whatever the bag size.
    batches: list[int] = []
    original = writer_module.CsvStream.flush

    def counting(self: writer_module.CsvStream) -> None:
        batches.append(len(self.pending))
        original(self)

    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 16)
    monkeypatch.setattr(extract_module, "CHUNK_ROWS", 16)
    monkeypatch.setattr(writer_module.CsvStream, "flush", counting)
    extract_run(demo.run(splits=2).path, tmp_path / "out")
    outputs = json.loads((tmp_path / "out" / "metadata.json").read_text())["outputs"]
    names = ("frames", "detections", "tracking", "frame_index")
    assert sum(batches) == sum(outputs[f"{name}.csv"]["rows"] for name in names)
    # Frames are checked every CHECK_EVERY messages, so a batch may overshoot by that much.
    assert max(batches) <= 16 + extract_module.CHECK_EVERY
