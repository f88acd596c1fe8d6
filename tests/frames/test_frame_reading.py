"""frame_index.csv positions read exactly the message rosbags reads, for every frame of every bag kind."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from rosbags.highlevel import AnyReader

from src.extraction.reader import default_typestore
from src.extraction.seek import FrameReadError, MessageLocation, read_message
from src.models import RunCoordinate
from tests.frames.conftest import Extracted


def locations(extracted: Extracted, coord: RunCoordinate) -> list[MessageLocation]:
    """Return every frame's location as frame_index.csv records it, in frame order."""
    out = extracted.local.processed_path(coord)
    topic = json.loads((out / "metadata.json").read_text())["chosen"]["frames"]["topic"]
    rows = pacsv.read_csv(out / "frame_index.csv").to_pylist()
    return [
        MessageLocation(
            r["bag"], r["storage"], topic, r["log_ns"], r["stamp_ns"], r["chunk_pos"], r["chunk_offset"], r["row_id"]
        )
        for r in rows
    ]


def rosbags_frames(bag: Path, topic: str, is_ros1: bool) -> list[bytes]:
    """Return the topic's messages as rosbags iterates them."""
    try:
        reader = AnyReader([bag])
        reader.open()
    except Exception:
        reader = AnyReader([bag], default_typestore=default_typestore("ros1" if is_ros1 else "ros2"))
        reader.open()
    try:
        conns = [c for c in reader.connections if c.topic == topic]
        return [bytes(raw) for _c, _t, raw in reader.messages(connections=conns)]
    finally:
        reader.close()


def check_run(extracted: Extracted, coord: RunCoordinate) -> int:
    """Assert every frame reads by position, equal to rosbags' bytes; return how many were checked."""
    raw_dir = extracted.local.raw_path(coord)
    wheres = locations(extracted, coord)
    by_bag: dict[str, list[MessageLocation]] = {}
    for where in wheres:
        by_bag.setdefault(where.bag, []).append(where)
    for bag, bag_wheres in by_bag.items():
        expected = rosbags_frames(raw_dir / bag, bag_wheres[0].topic, bag_wheres[0].is_ros1)
        assert len(expected) == len(bag_wheres)
        for where, message in zip(bag_wheres, expected, strict=True):
            assert where.seekable, f"{bag}: frame without a position"
            got, by_position = read_message(raw_dir / bag, where)
            assert by_position and got == message
    return len(wheres)


def test_every_demo_frame_reads_by_position(extracted: Extracted) -> None:
    kinds = set()
    for coord, run in extracted.demo_runs.items():
        assert check_run(extracted, coord) == run.count(next(iter(run.bags[0].msgtypes)))
        kinds.add((run.plan.fmt, run.plan.compression))
    # ROS1 uncompressed, lz4 and bz2 chunks; MCAP plain and zstd chunks.
    assert {("ros1", "none"), ("ros2", "zstd")} <= kinds and len(kinds) >= 4


@pytest.mark.parametrize("name", ["tiny.bag", "tiny_svo.bag", "ros2_mcap", "ros2_sqlite3"])
def test_every_real_frame_reads_by_position(extracted: Extracted, real: dict[str, RunCoordinate], name: str) -> None:
    assert check_run(extracted, real[name]) > 0
    storages = {where.storage for where in locations(extracted, real[name])}
    assert storages == {"rosbag1" if name.endswith(".bag") else name.removeprefix("ros2_")}


def test_a_wrong_position_falls_back_to_the_log_time(extracted: Extracted) -> None:
    coord = next(iter(extracted.demo_runs))
    where = locations(extracted, coord)[3]
    path = extracted.local.raw_path(coord) / where.bag
    good, _ = read_message(path, where)
    for broken in (replace(where, chunk_offset=0), replace(where, chunk_pos=0), replace(where, stamp_ns=1)):
        if broken.stamp_ns == 1:
            with pytest.raises(FrameReadError, match=r"no .* message at that time"):
                read_message(path, broken)
            continue
        got, by_position = read_message(path, broken)
        assert got == good and not by_position
    # Without any position (another extractor's frames.csv): the bag and the log time are enough.
    got, by_position = read_message(path, replace(where, chunk_pos=None, chunk_offset=None))
    assert got == good and not by_position


def test_a_missing_bag_is_a_clear_error(extracted: Extracted, tmp_path: Path) -> None:
    where = locations(extracted, next(iter(extracted.demo_runs)))[0]
    with pytest.raises(FrameReadError, match="not on disk any more"):
        read_message(tmp_path / "gone.bag", where)
