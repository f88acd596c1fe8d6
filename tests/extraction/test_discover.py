"""Finding the bags of a run folder, the typestore fallback, bag order and checksums."""

from __future__ import annotations

import base64
import re
import shutil
import sqlite3
from pathlib import Path

import google_crc32c
import pandas as pd
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import StoragePlugin

from src.demo.bags import DETECTIONS_TOPIC, IMAGE_TOPICS, TRACKS_TOPIC
from src.extraction import ExtractionError, extract_run
from src.extraction import checksums as checksums_module
from src.extraction import reader as reader_module
from src.extraction.checksums import Checksums, file_crc32c
from src.extraction.reader import discover
from src.rosmsgs import VISION_MSGTYPES, vision_typestore
from tests.extraction.conftest import Demo

METADATA = """rosbag2_bagfile_information:
  version: 9
  storage_identifier: {storage}
  compression_mode: {mode}
  compression_format: {fmt}
  relative_file_paths: [{files}]
"""


def _touch(root: Path, *names: str) -> None:
    """Create empty files under root."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def _folder(root: Path, name: str, files: list[str], mode: str = "", storage: str = "mcap") -> None:
    """Create a ROS2 bag folder whose metadata.yaml lists files."""
    (root / name).mkdir(parents=True)
    text = METADATA.format(storage=storage, mode=mode or "''", fmt="zstd" if mode else "''", files=", ".join(files))
    (root / name / "metadata.yaml").write_text(text)


def test_discover_layout(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "drive_001.bag",
        "drive_002.bag.active",  # rosbag record still writing
        "upload.tmp",
        ".drive_003.bag.partial",  # someone's temp name
        "notes.txt",
        "nested/drive_004.mcap",
        "nested/drive_005.db3",
        ".hidden/drive_006.bag",
        "drive_007/drive_007_0.mcap",
        "drive_007/drive_007_1.mcap",
        "drive_007/drive_007_2.mcap.tmp",
        "drive_007/stray.mcap",
        "drive_007/deeper/ignored.bag",
        "zipped/zipped_0.mcap.zstd",
    )
    (tmp_path / "drive_007" / "metadata.yaml").write_text(
        METADATA.format(storage="mcap", mode="''", fmt="''", files="drive_007_0.mcap, drive_007_1.mcap")
    )
    (tmp_path / "zipped" / "metadata.yaml").write_text(
        METADATA.format(storage="mcap", mode="file", fmt="zstd", files="zipped_0.mcap.zstd")
    )
    sources, skipped, warnings = discover(tmp_path)
    assert [(s.name, s.fmt, s.storage) for s in sources] == [
        ("drive_001.bag", "ros1", "rosbag1"),
        ("drive_007/drive_007_0.mcap", "ros2", "mcap"),
        ("drive_007/drive_007_1.mcap", "ros2", "mcap"),
        ("nested/drive_004.mcap", "ros2", "mcap"),
        ("nested/drive_005.db3", "ros2", "sqlite3"),
        ("zipped", "ros2", "mcap"),  # file-compressed: only the folder reader can undo it
    ]
    assert sources[-1].files == (tmp_path / "zipped" / "zipped_0.mcap.zstd",)
    assert sorted(skipped) == ["drive_002.bag.active", "drive_007/drive_007_2.mcap.tmp", "upload.tmp"]
    assert warnings == ["drive_007/stray.mcap: not listed in metadata.yaml, ignored"]


def test_ros2_folder_problems(tmp_path: Path) -> None:
    _folder(tmp_path / "a", "rec", ["rec_0.mcap", "rec_1.mcap"])
    _touch(tmp_path / "a", "rec/rec_0.mcap")
    with pytest.raises(ExtractionError, match=re.escape("rec: metadata.yaml lists rec_1.mcap but the folder lacks it")):
        discover(tmp_path / "a")
    (tmp_path / "b" / "rec").mkdir(parents=True)
    (tmp_path / "b" / "rec" / "metadata.yaml").write_text("not: [yaml")
    with pytest.raises(ExtractionError, match=re.escape("rec/metadata.yaml: cannot read ROS2 bag metadata")):
        discover(tmp_path / "b")


def _copy_without_definitions(demo: Demo, dest: Path, keep_image: bool) -> tuple[int, int]:
    """Rewrite a demo ROS2 run as a .db3 and drop its message definitions; return (frames, detections)."""
    run = demo.run(fmt="ros2", image="raw")
    store = vision_typestore()
    writer = Writer(dest, version=8, storage_plugin=StoragePlugin.SQLITE3)
    with writer:
        conns = {}
        for bag in run.bags:
            with AnyReader([demo.raw / bag.key]) as reader:
                for conn, log_ns, raw in reader.messages():
                    if conn.topic not in conns:
                        conns[conn.topic] = writer.add_connection(conn.topic, conn.msgtype, typestore=store)
                    writer.write(conns[conn.topic], log_ns, raw)
    db = next(dest.glob("*.db3"))
    with sqlite3.connect(db) as con:
        if keep_image:  # only the vision_msgs definitions are missing
            con.execute("DELETE FROM message_definitions WHERE topic_type LIKE 'vision_msgs/%'")
        else:  # like bags recorded before definitions were stored
            con.execute("DELETE FROM message_definitions")
    return run.count(IMAGE_TOPICS["raw"]), run.count(DETECTIONS_TOPIC)


@pytest.mark.parametrize("keep_image", [False, True])
def test_bags_without_definitions_use_the_project_types(
    demo: Demo, tmp_path: Path, keep_image: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames, detections = _copy_without_definitions(demo, tmp_path / "run" / "rec", keep_image)
    used: list[str] = []
    original = reader_module.default_typestore
    monkeypatch.setattr(reader_module, "default_typestore", lambda fmt: used.append(fmt) or original(fmt))
    summary = extract_run(tmp_path / "run", tmp_path / "out")
    assert used and set(used) == {"ros2"}
    assert (summary.frames, summary.detection_messages) == (frames, detections)
    assert summary.tracking_topic == TRACKS_TOPIC
    assert len(VISION_MSGTYPES) == 7  # what the fallback registers


def test_bags_are_read_in_recording_order_not_name_order(demo: Demo, tmp_path: Path) -> None:
    run = demo.run(fmt="ros1", splits=2)
    (tmp_path / "run").mkdir()
    # Named the way a naive sort misorders splits: _10 sorts before _2.
    shutil.copy(demo.raw / run.bags[0].key, tmp_path / "run" / "drive_2.bag")
    shutil.copy(demo.raw / run.bags[1].key, tmp_path / "run" / "drive_10.bag")
    extract_run(tmp_path / "run", tmp_path / "out")
    frames = pd.read_csv(tmp_path / "out" / "frames.csv")
    assert list(dict.fromkeys(frames["bag"])) == ["drive_2.bag", "drive_10.bag"]
    assert frames["stamp_ns"].is_monotonic_increasing


def test_checksums_in_a_helper_process_and_without(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    files = [demo.raw / bag.key for run in demo.runs for bag in run.bags]
    expected = {path: file_crc32c(path) for path in files}
    monkeypatch.setattr(checksums_module, "HELPER_MIN_BYTES", 0)
    with Checksums(files) as helper:
        assert helper._proc is not None  # the big-input path, however small the files
        assert helper.results() == expected
    monkeypatch.setattr(checksums_module.sys, "executable", "/no/such/python")
    with Checksums(files) as fallback:
        assert fallback._proc is None
        assert fallback.results() == expected
    assert file_crc32c(files[0]) == base64.b64encode(google_crc32c.Checksum(files[0].read_bytes()).digest()).decode()
