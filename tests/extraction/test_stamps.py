"""The fast path: header stamps read from raw bytes equal those of full deserialisation."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from src.extraction import read_header_stamp
from src.extraction.reader import IMAGE_TYPES
from src.extraction.stamps import has_leading_header
from tests.extraction.conftest import Demo

REAL = ("tiny.bag", "tiny_svo.bag", "ros2_mcap", "ros2_sqlite3")


def _stamps(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """Return (image messages, [(fast stamp, deserialised stamp)]) for every image topic of a bag."""
    pairs = []
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        conns = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
        for conn, _log_ns, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            full = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
            pairs.append((read_header_stamp(raw, is_ros1=not reader.is2), full))
    return len(pairs), pairs


@pytest.mark.parametrize("name", REAL)
def test_fast_path_equals_deserialisation_on_real_bags(real_bags: Path | None, name: str) -> None:
    if real_bags is None:
        pytest.skip("real test bags not checked out; the demo bags below cover the fast path")
    count, pairs = _stamps(real_bags / name)
    assert count == {"tiny.bag": 7, "tiny_svo.bag": 10, "ros2_mcap": 4, "ros2_sqlite3": 4}[name]
    assert all(fast == full for fast, full in pairs)
    assert all(full > 0 for _fast, full in pairs)


def test_fast_path_equals_deserialisation_on_demo_bags(demo: Demo) -> None:
    seen = set()
    for run in demo.runs:
        for bag in run.bags:
            path = demo.raw / bag.key
            count, pairs = _stamps(path)
            assert count == sum(n for topic, n in bag.counts.items() if topic.startswith("/camera"))
            assert [fast for fast, _ in pairs] == [full for _, full in pairs]
            seen.add((run.plan.fmt, run.plan.image))
    # Every combination the extractor meets: ROS1/CDR × Image/CompressedImage.
    assert seen == {("ros1", "raw"), ("ros1", "compressed"), ("ros2", "raw"), ("ros2", "compressed")}


def test_big_endian_cdr_and_other_encapsulations() -> None:
    store = get_typestore(Stores.ROS2_HUMBLE)
    t = store.types
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=-3, nanosec=999_999_999), frame_id="")
    msg = t["sensor_msgs/msg/CompressedImage"](header, "png", np.zeros(3, dtype=np.uint8))
    for little in (True, False):
        raw = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/CompressedImage", little_endian=little))
        assert read_header_stamp(raw, is_ros1=False) == -3 * 10**9 + 999_999_999
    # CDR2 plain encapsulation (0x0007) lays the first fields out the same way.
    assert read_header_stamp(b"\x00\x07\x00\x00" + struct.pack("<iI", 12, 34), is_ros1=False) == 12 * 10**9 + 34
    with pytest.raises(ValueError, match="encapsulation"):
        read_header_stamp(b"\x00\x03\x00\x00" + bytes(8), is_ros1=False)  # parameter-list CDR
    with pytest.raises(ValueError, match="too short"):
        read_header_stamp(b"\x00\x01\x00\x00\x01", is_ros1=False)


def test_ros1_layout() -> None:
    raw = struct.pack("<III", 41, 1_700_000_000, 5) + struct.pack("<I", 0)
    assert read_header_stamp(raw, is_ros1=True) == 1_700_000_000 * 10**9 + 5
    # ROS1 secs are unsigned: stamps after 2038 stay positive.
    assert read_header_stamp(struct.pack("<III", 0, 2**31 + 1, 0), is_ros1=True) == (2**31 + 1) * 10**9


def test_has_leading_header() -> None:
    store = get_typestore(Stores.ROS2_HUMBLE)
    assert has_leading_header(store, "sensor_msgs/msg/Image")
    assert has_leading_header(store, "sensor_msgs/msg/CompressedImage")
    assert not has_leading_header(store, "geometry_msgs/msg/Pose")
    assert not has_leading_header(store, "no_such/msg/Type")
