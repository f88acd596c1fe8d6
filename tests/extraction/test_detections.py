"""The direct Detection2DArray parser agrees with rosbags' full deserialisation, byte for byte."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from src.extraction.detections import (
    LAYOUT_ROS1,
    LAYOUT_ROS2,
    ParseErrors,
    boxes_from_message,
    fast_parser,
    layout,
    parse_cdr,
    parse_ros1,
)
from src.extraction.extract import _PerceptionOutput
from src.extraction.reader import TopicChoice
from src.rosmsgs import ros1_vision_typestore, vision_typestore
from tests.extraction.conftest import Demo

DETECTION_TYPE = "vision_msgs/msg/Detection2DArray"


def test_layout_constants_match_the_project_definitions() -> None:
    assert layout(vision_typestore(), DETECTION_TYPE) == LAYOUT_ROS2
    assert layout(ros1_vision_typestore(), DETECTION_TYPE) == LAYOUT_ROS1


def test_parser_equals_deserialisation_on_demo_bags(demo: Demo) -> None:
    messages = detections = 0
    for run in demo.runs:
        for bag in run.bags:
            with AnyReader([demo.raw / bag.key]) as reader:
                conns = [c for c in reader.connections if c.msgtype == DETECTION_TYPE]
                parser = fast_parser(reader.typestore, DETECTION_TYPE, is_ros1=not reader.is2)
                assert parser is (parse_cdr if reader.is2 else parse_ros1)
                for conn, _log_ns, raw in reader.messages(connections=conns):
                    msg = reader.deserialize(raw, conn.msgtype)
                    expected = boxes_from_message(msg)
                    assert parser(raw) == expected
                    if reader.is2:  # the same message big-endian
                        big = reader.typestore.serialize_cdr(msg, DETECTION_TYPE, little_endian=False)
                        assert parse_cdr(bytes(big)) == expected
                    messages += 1
                    detections += len(expected[1])
    assert messages > 500 and detections > 1000


def _message(store, boxes: list[tuple[str, list[tuple[str, float]], float]]) -> object:
    """Build a Detection2DArray with (id, [(class, score)…], cx) detections."""
    t = store.types
    v = "vision_msgs/msg/"
    stamp = t["builtin_interfaces/msg/Time"](sec=5, nanosec=7)
    ros1 = "seq" in dict(store.fielddefs["std_msgs/msg/Header"][1])
    header = t["std_msgs/msg/Header"](**({"seq": 3} if ros1 else {}), stamp=stamp, frame_id="cam")
    pose = t["geometry_msgs/msg/PoseWithCovariance"](
        pose=t["geometry_msgs/msg/Pose"](
            position=t["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        ),
        covariance=np.arange(36, dtype=np.float64),
    )
    dets = [
        t[f"{v}Detection2D"](
            header=header,
            results=[
                t[f"{v}ObjectHypothesisWithPose"](hypothesis=t[f"{v}ObjectHypothesis"](class_id=c, score=s), pose=pose)
                for c, s in results
            ],
            bbox=t[f"{v}BoundingBox2D"](
                center=t[f"{v}Pose2D"](position=t[f"{v}Point2D"](x=cx, y=2.5), theta=0.1), size_x=4.0, size_y=math.inf
            ),
            id=track,
        )
        for track, results, cx in boxes
    ]
    return t[f"{v}Detection2DArray"](header=header, detections=dets)


def test_edge_cases_multiple_hypotheses_none_and_non_finite() -> None:
    store = vision_typestore()
    msg = _message(
        store,
        [
            ("7", [("car", 0.4), ("truck", 0.9), ("bus", 0.9)], 1.0),  # best score wins, first of equals
            ("", [], math.nan),  # no hypothesis at all, a NaN center
            ("ünïcode-ïd", [("pedestrian", math.nan), ("cyclist", 0.2)], 3.0),  # NaN score loses to a number
        ],
    )
    expected = (5 * 10**9 + 7, [
        ("7", "truck", 0.9, 1.0, 2.5, 4.0, None),
        ("", None, None, None, 2.5, 4.0, None),
        ("ünïcode-ïd", "cyclist", 0.2, 3.0, 2.5, 4.0, None),
    ])  # fmt: skip
    for little in (True, False):
        assert parse_cdr(bytes(store.serialize_cdr(msg, DETECTION_TYPE, little_endian=little))) == expected
    assert boxes_from_message(msg) == expected
    ros1 = ros1_vision_typestore()
    msg1 = _message(ros1, [("7", [("car", 0.4), ("truck", 0.9), ("bus", 0.9)], 1.0), ("", [], math.nan)])
    assert parse_ros1(bytes(ros1.serialize_ros1(msg1, DETECTION_TYPE))) == (expected[0], expected[1][:2])
    empty = store.types[DETECTION_TYPE](header=msg.header, detections=[])
    assert parse_cdr(bytes(store.serialize_cdr(empty, DETECTION_TYPE))) == (5 * 10**9 + 7, [])


def test_parser_rejects_what_it_cannot_account_for() -> None:
    store = vision_typestore()
    raw = bytes(store.serialize_cdr(_message(store, [("1", [("car", 0.5)], 1.0)]), DETECTION_TYPE))
    with pytest.raises(ValueError, match="ended at byte"):
        parse_cdr(raw + bytes(8))  # trailing bytes: not the layout we think
    with pytest.raises(ParseErrors):
        parse_cdr(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="encapsulation"):
        parse_cdr(b"\x00\x02" + raw[2:])


OLD_LAYOUT = {  # vision_msgs 2.x/3.x (ROS2 Foxy/Galactic): no ObjectHypothesis, geometry_msgs/Pose2D centers
    "vision_msgs/msg/ObjectHypothesisWithPose": "string id\nfloat64 score\ngeometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/BoundingBox2D": "geometry_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox2D bbox\n"
        "sensor_msgs/Image source_img\nbool is_tracking\nstring tracking_id\n"
    ),
    DETECTION_TYPE: "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def test_other_layouts_use_full_deserialisation() -> None:
    store = get_typestore(Stores.ROS2_FOXY)
    for name, text in OLD_LAYOUT.items():
        store.register(get_types_from_msg(text, name))
    assert fast_parser(store, DETECTION_TYPE, is_ros1=False) is None
    assert fast_parser(store, "no_such/msg/Type", is_ros1=False) is None
    det = SimpleNamespace(
        results=[SimpleNamespace(id="car", score=0.7)],
        bbox=SimpleNamespace(center=SimpleNamespace(x=1.0, y=2.0, theta=0.0), size_x=3.0, size_y=4.0),
        tracking_id="42",
    )
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=2)), detections=[det])
    assert boxes_from_message(msg) == (10**9 + 2, [("42", "car", 0.7, 1.0, 2.0, 3.0, 4.0)])


def test_perception_output_json_and_csv_agree(tmp_path: Path) -> None:
    choice = TopicChoice("tracking", "/tracks", DETECTION_TYPE, 2, "auto", "test")
    output = _PerceptionOutput(tmp_path, "tracking", choice)
    boxes = [
        ("7", "car", 0.5, 1.25, 2.0, 3.0, 4.0),
        ('quote"d', None, None, None, 1e-7, 3.0, 1e300),
        ("", "ünï", 0.1, 0.0, -0.0, 2.5, 5.0),
    ]
    output.add("a.bag", 20, 10, boxes)
    output.add("a.bag", 40, 30, [])
    output.close()
    doc = json.loads((tmp_path / "tracking.json").read_text())
    keys = ("track_id", "class_id", "score", "cx", "cy", "w", "h")
    first = {"bag": "a.bag", "message_index": 0, "stamp_ns": 10, "receive_ns": 20}
    assert doc["messages"] == [
        {**first, "tracks": [dict(zip(keys, box, strict=True)) for box in boxes]},
        {"bag": "a.bag", "message_index": 1, "stamp_ns": 30, "receive_ns": 40, "tracks": []},
    ]
    assert (doc["topic"], doc["message_count"], doc["object_count"]) == ("/tracks", 2, 3)
    rows = pd.read_csv(tmp_path / "tracking.csv", dtype={"track_id": str, "class_id": str}, keep_default_na=False)
    assert list(rows["track_id"]) == ["7", 'quote"d', "", ""]
    assert list(rows["message_index"]) == [0, 0, 0, 1]  # the message without tracks is one empty row
    assert rows["cy"].tolist() == ["2", "1e-7", "-0", ""]  # pyarrow's shortest round-trip form
    assert rows["score"].tolist() == ["0.5", "", "0.1", ""]  # a missing score is an empty field
    assert rows.iloc[3]["class_id"] == rows.iloc[3]["w"] == ""
