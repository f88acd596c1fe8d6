"""A sliced download's file is written to disk while its slices arrive, never blocking or failing the download."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from src.services.operations import transfer


def test_the_file_is_flushed_while_the_body_runs_and_the_helper_ends_with_it(tmp_path: Path, monkeypatch):
    path = tmp_path / "big.part"
    path.write_bytes(b"x" * 1024)
    flushed: list[int] = []
    monkeypatch.setattr(transfer.os, "fdatasync", lambda fd: flushed.append(fd))
    before = threading.active_count()
    with transfer.background_writeback(path, every_s=0.02):
        time.sleep(0.2)
    assert flushed, "nothing was written back while the slices arrived"
    assert threading.active_count() == before


def test_a_failing_flush_is_left_to_the_final_fsync(tmp_path: Path, monkeypatch):
    path = tmp_path / "big.part"
    path.write_bytes(b"x")

    def disk_error(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(transfer.os, "fdatasync", disk_error)
    with transfer.background_writeback(path, every_s=0.01):
        time.sleep(0.05)  # the body (the download) goes on; no exception escapes the helper thread
    assert os.path.exists(path)


def test_a_failing_body_still_stops_the_helper(tmp_path: Path):
    path = tmp_path / "big.part"
    path.write_bytes(b"x")
    before = threading.active_count()
    with pytest.raises(RuntimeError), transfer.background_writeback(path, every_s=0.01):
        raise RuntimeError("a slice failed")
    assert threading.active_count() == before
