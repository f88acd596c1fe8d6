"""extract_run on bags written by real ROS tools: images only, several image topics, no embedded definitions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from src.extraction import extract_run

# name -> (frames, chosen image topic, alternatives as (topic, count))
EXPECTED = {
    "tiny.bag": (4, "/dvs/image_raw", [("/dvs1/image_raw", 3)]),
    "tiny_svo.bag": (10, "/camera/image_raw", []),
    "ros2_mcap": (2, "/test/sensor_msgs/image", [("/test/sensor_msgs/compressed_image", 2)]),
    "ros2_sqlite3": (2, "/test/sensor_msgs/image", [("/test/sensor_msgs/compressed_image", 2)]),
}


@pytest.fixture
def real(real_bags: Path | None) -> Path:
    """Return the real bags folder or skip (the demo tests cover the same code on generated bags)."""
    if real_bags is None:
        pytest.skip("real test bags not checked out")
    return real_bags


@pytest.mark.parametrize("name", EXPECTED)
def test_real_bag(real: Path, tmp_path: Path, name: str) -> None:
    frames_expected, topic, alternatives = EXPECTED[name]
    # A run folder holds the recording; the read-only fixture is copied so nothing is written beside it.
    run = tmp_path / "run"
    run.mkdir()
    source = real / name
    if source.is_dir():
        shutil.copytree(source, run / name)
    else:
        shutil.copy(source, run / name)
    summary = extract_run(run, tmp_path / "out")
    out = tmp_path / "out"
    frames = pd.read_csv(out / "frames.csv", dtype={"bag": str, "topic": str})
    assert len(frames) == summary.frames == frames_expected
    assert set(frames["topic"]) == {topic}
    assert frames["stamp_ns"].is_monotonic_increasing
    meta = json.loads((out / "metadata.json").read_text())
    chosen = meta["chosen"]
    assert chosen["frames"]["topic"] == topic
    assert [(a["topic"], a["count"]) for a in chosen["frames"]["alternatives"]] == alternatives
    # Images only: the perception files exist with their headers and nothing else, and metadata says why.
    for role in ("detections", "tracking"):
        assert chosen[role]["topic"] is None and chosen[role]["source"] == "none found"
        assert len((out / f"{role}.csv").read_text().splitlines()) == 1
        doc = json.loads((out / f"{role}.json").read_text())
        assert doc["messages"] == [] and doc["topic"] is None
        assert any(w.startswith(f"no {role} topic") for w in meta["warnings"])
    assert meta["bags"][0]["crc32c"] and meta["bags"][0]["size"] > 0


def test_tiny_bag_keeps_header_stamps_not_record_times(real: Path, tmp_path: Path) -> None:
    # tiny.bag was recorded in 2023 from a 2018 dataset: header stamp and receive time differ by years.
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(real / "tiny.bag", run / "tiny.bag")
    extract_run(run, tmp_path / "out")
    frames = pd.read_csv(tmp_path / "out" / "frames.csv")
    assert (pd.to_datetime(frames["stamp_ns"], unit="ns").dt.year < 2020).all()
    assert (pd.to_datetime(frames["receive_ns"], unit="ns").dt.year == 2023).all()


def test_frames_topic_override(real: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(real / "tiny.bag", run / "tiny.bag")
    summary = extract_run(run, tmp_path / "out", frames_topic="/dvs1/image_raw")
    assert summary.frames == 3
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["chosen"]["frames"]["source"] == "override"
