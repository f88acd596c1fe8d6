"""Read vision_msgs/Detection2DArray messages into rows: a direct parser for the known layout, rosbags otherwise.

Full deserialisation builds a dozen objects and a numpy covariance array per detection (~40 µs each);
the extractor needs seven values of it. For the vision_msgs 4.x layout (src/rosmsgs), serialized as ROS1 or
CDR, the values are read straight from the bytes; any other layout, or any message the parser cannot account
for byte by byte, goes through rosbags and the attribute-tolerant readers below.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from math import isfinite
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

from src.extraction.stamps import NS_PER_S

# (track id, class id, score, cx, cy, w, h); floats that are NaN or infinite become None
Box = tuple[str, str | None, float | None, float | None, float | None, float | None, float | None]
Parser = Callable[[bytes], tuple[int, list[Box]]]
ParseErrors = (ValueError, struct.error, UnicodeDecodeError, IndexError)

_TIME = "{sec:int32,nanosec:uint32}"
_HEADER_ROS2 = f"{{stamp:{_TIME},frame_id:string}}"
_HEADER_ROS1 = f"{{seq:uint32,stamp:{_TIME},frame_id:string}}"
_POSE = "{position:{x:float64,y:float64,z:float64},orientation:{x:float64,y:float64,z:float64,w:float64}}"
_RESULT = f"{{hypothesis:{{class_id:string,score:float64}},pose:{{pose:{_POSE},covariance:float64[36]}}}}"
_BBOX = "{center:{position:{x:float64,y:float64},theta:float64},size_x:float64,size_y:float64}"


def _array_layout(header: str) -> str:
    """Return the flattened Detection2DArray layout for a header layout."""
    return f"{{header:{header},detections:{{header:{header},results:{_RESULT}[],bbox:{_BBOX},id:string}}[]}}"


# vision_msgs 4.x as src/rosmsgs defines it; rosbags spells ROS1 `time` as builtin_interfaces/Time.
LAYOUT_ROS2 = _array_layout(_HEADER_ROS2)
LAYOUT_ROS1 = _array_layout(_HEADER_ROS1)

_POSE_SKIP = (3 + 4 + 36) * 8  # position, orientation, covariance: float64s nobody here reads
_U32_LE, _U32_BE = struct.Struct("<I"), struct.Struct(">I")
_F64_LE, _F64_BE = struct.Struct("<d"), struct.Struct(">d")
_BOX_LE, _BOX_BE = struct.Struct("<5d"), struct.Struct(">5d")  # center x, y, theta, size_x, size_y
_STAMP_CDR_LE, _STAMP_CDR_BE = struct.Struct("<iI"), struct.Struct(">iI")
_STAMP_ROS1 = struct.Struct("<II")


def layout(typestore: Typestore, msgtype: str) -> str:
    """Return msgtype's fields flattened to one string, nested types expanded, for comparing layouts."""
    _consts, fields = typestore.fielddefs[msgtype]
    return "{" + ",".join(f"{name}:{_describe(typestore, kind, ref)}" for name, (kind, ref) in fields) + "}"


def _describe(typestore: Typestore, kind: Nodetype, ref: Any) -> str:
    """Return one field type as layout() spells it."""
    if kind == Nodetype.BASE:
        return ref[0] if not ref[1] else f"{ref[0]}<={ref[1]}"
    if kind == Nodetype.NAME:
        return layout(typestore, ref)
    sub, length = ref
    return f"{_describe(typestore, *sub)}[{length if kind == Nodetype.ARRAY else ''}]"


def fast_parser(typestore: Typestore, msgtype: str, is_ros1: bool) -> Parser | None:
    """Return the direct parser when msgtype has the known layout, else None."""
    try:
        found = layout(typestore, msgtype)
    except KeyError:
        return None
    if is_ros1:
        return parse_ros1 if found == LAYOUT_ROS1 else None
    return parse_cdr if found == LAYOUT_ROS2 else None


def _num(value: float) -> float | None:
    """Return value, or None when it is NaN or infinite."""
    return value if math.isfinite(value) else None


def parse_cdr(raw: bytes) -> tuple[int, list[Box]]:
    """Return (header stamp ns, boxes) of a CDR Detection2DArray in the vision_msgs 4.x layout."""
    if raw[0] != 0 or raw[1] not in (0, 1):
        raise ValueError("unsupported CDR encapsulation")
    if raw[1]:
        u32, f64, box5, stamp = _U32_LE.unpack_from, _F64_LE.unpack_from, _BOX_LE.unpack_from, _STAMP_CDR_LE
    else:
        u32, f64, box5, stamp = _U32_BE.unpack_from, _F64_BE.unpack_from, _BOX_BE.unpack_from, _STAMP_CDR_BE
    # CDR aligns each primitive to its size, counted from the end of the 4-byte encapsulation header:
    # (o + 3) & -4 aligns to 4 (the header is 4 long); ((o + 3) & -8) + 4 aligns to 8 relative to it.
    sec, nsec = stamp.unpack_from(raw, 4)
    o = 12
    o += 4 + u32(raw, o)[0]  # frame_id
    o = (o + 3) & -4
    (count,) = u32(raw, o)
    o += 4
    boxes: list[Box] = []
    for _ in range(count):
        o = ((o + 3) & -4) + 8  # header stamp
        o += 4 + u32(raw, o)[0]  # frame_id
        o = (o + 3) & -4
        (results,) = u32(raw, o)
        o += 4
        class_id: str | None = None
        score: float | None = None
        for _ in range(results):
            o = (o + 3) & -4
            (n,) = u32(raw, o)
            name = raw[o + 4 : o + 3 + n].decode()  # CDR string lengths count the trailing NUL
            o = (((o + 4 + n) + 3) & -8) + 4
            (value,) = f64(raw, o)
            if not isfinite(value):
                value = None
            o += 8 + _POSE_SKIP
            if score is None or (value is not None and value > score):
                class_id, score = name, value
        o = ((o + 3) & -8) + 4
        cx, cy, _theta, w, h = box5(raw, o)
        o += 40
        (n,) = u32(raw, o)
        track_id = raw[o + 4 : o + 3 + n].decode()
        o += 4 + n
        if isfinite(cx + cy + w + h):  # one test for the usual case; the sum is NaN/inf if any part is
            boxes.append((track_id, class_id, score, cx, cy, w, h))
        else:
            boxes.append((track_id, class_id, score, _num(cx), _num(cy), _num(w), _num(h)))
    if not 0 <= len(raw) - o <= 3:  # only alignment padding may follow
        raise ValueError(f"Detection2DArray parse ended at byte {o} of {len(raw)}")
    return sec * NS_PER_S + nsec, boxes


def parse_ros1(raw: bytes) -> tuple[int, list[Box]]:
    """Return (header stamp ns, boxes) of a ROS1 Detection2DArray in the vision_msgs 4.x layout."""
    u32, f64, box5 = _U32_LE.unpack_from, _F64_LE.unpack_from, _BOX_LE.unpack_from
    # ROS1 serialization is little-endian and packed; strings carry no NUL.
    sec, nsec = _STAMP_ROS1.unpack_from(raw, 4)
    o = 12
    o += 4 + u32(raw, o)[0]  # frame_id
    (count,) = u32(raw, o)
    o += 4
    boxes: list[Box] = []
    for _ in range(count):
        o += 12  # header seq and stamp
        o += 4 + u32(raw, o)[0]  # frame_id
        (results,) = u32(raw, o)
        o += 4
        class_id: str | None = None
        score: float | None = None
        for _ in range(results):
            (n,) = u32(raw, o)
            name = raw[o + 4 : o + 4 + n].decode()
            o += 4 + n
            (value,) = f64(raw, o)
            if not isfinite(value):
                value = None
            o += 8 + _POSE_SKIP
            if score is None or (value is not None and value > score):
                class_id, score = name, value
        cx, cy, _theta, w, h = box5(raw, o)
        o += 40
        (n,) = u32(raw, o)
        track_id = raw[o + 4 : o + 4 + n].decode()
        o += 4 + n
        if isfinite(cx + cy + w + h):  # one test for the usual case; the sum is NaN/inf if any part is
            boxes.append((track_id, class_id, score, cx, cy, w, h))
        else:
            boxes.append((track_id, class_id, score, _num(cx), _num(cy), _num(w), _num(h)))
    if o != len(raw):
        raise ValueError(f"Detection2DArray parse ended at byte {o} of {len(raw)}")
    return sec * NS_PER_S + nsec, boxes


def read_boxes(reader: AnyReader, raw: bytes, msgtype: str, parser: Parser | None) -> tuple[int, list[Box], bool]:
    """Return (stamp ns, boxes, fell back) for one message: parser when it can, rosbags otherwise."""
    if parser is not None:
        try:
            return (*parser(raw), False)
        except ParseErrors:
            return (*boxes_from_message(reader.deserialize(raw, msgtype)), True)
    return (*boxes_from_message(reader.deserialize(raw, msgtype)), False)


# -- deserialised messages, any vision_msgs layout --------------------------------------------------


def boxes_from_message(msg: Any) -> tuple[int, list[Box]]:
    """Return (header stamp ns, boxes) of a deserialised Detection2DArray of any vision_msgs version."""
    stamp = msg.header.stamp
    boxes: list[Box] = []
    for det in msg.detections:
        class_id, score = best_hypothesis(det.results)
        cx, cy = bbox_center(det.bbox)
        w, h = _num(float(det.bbox.size_x)), _num(float(det.bbox.size_y))
        boxes.append((detection_id(det), class_id, score, cx, cy, w, h))
    return stamp.sec * NS_PER_S + stamp.nanosec, boxes


def best_hypothesis(results: Any) -> tuple[str | None, float | None]:
    """Return (class id, score) of the best-scoring hypothesis, (None, None) when there is none."""
    class_id: str | None = None
    score: float | None = None
    for result in results:
        # vision_msgs 4.x nests class_id/score in `hypothesis`; older layouts carry id/score directly.
        hyp = getattr(result, "hypothesis", result)
        value = _num(float(hyp.score))
        if score is None or (value is not None and value > score):
            name = getattr(hyp, "class_id", None)
            class_id, score = str(name if name is not None else getattr(hyp, "id", "")), value
    return class_id, score


def bbox_center(bbox: Any) -> tuple[float | None, float | None]:
    """Return a BoundingBox2D's center: center.position (vision_msgs 4.x) or center.x/y (geometry Pose2D)."""
    point = getattr(bbox.center, "position", bbox.center)
    return _num(float(point.x)), _num(float(point.y))


def detection_id(det: Any) -> str:
    """Return a Detection2D's track id: `id` (vision_msgs 4.x) or `tracking_id` (older layouts)."""
    value = getattr(det, "id", None)
    if value is None:
        value = getattr(det, "tracking_id", "")
    return str(value) if value is not None else ""
