"""Fast path: read a message's leading std_msgs/Header stamp from its serialized bytes."""

from __future__ import annotations

import struct

from rosbags.typesys.store import Typestore

HEADER_TYPE = "std_msgs/msg/Header"
NS_PER_S = 1_000_000_000

# ROS1: uint32 seq, uint32 secs, uint32 nsecs, little-endian, no padding.
_ROS1 = struct.Struct("<II")
# CDR (ROS2): a 4-byte encapsulation header, then int32 sec, uint32 nanosec at offsets 4 and 8 (already aligned).
_CDR_LE = struct.Struct("<iI")
_CDR_BE = struct.Struct(">iI")
# Encapsulation kinds whose body starts directly with the first field: CDR and plain CDR2, big/little endian.
_CDR_KINDS = {0x00: _CDR_BE, 0x01: _CDR_LE, 0x06: _CDR_BE, 0x07: _CDR_LE}
_STAMP_END = 12  # bytes needed: 4 (seq or encapsulation) + 4 + 4


def read_header_stamp(rawdata: bytes | memoryview, is_ros1: bool) -> int:
    """Return the header stamp in ns of a message whose first field is a std_msgs/Header."""
    if len(rawdata) < _STAMP_END:
        raise ValueError(f"message of {len(rawdata)} bytes is too short for a header stamp")
    if is_ros1:
        sec, nsec = _ROS1.unpack_from(rawdata, 4)
    else:
        layout = _CDR_KINDS.get(rawdata[1])
        if layout is None or rawdata[0] != 0:
            raise ValueError(f"unsupported CDR encapsulation 0x{rawdata[0]:02x}{rawdata[1]:02x}")
        sec, nsec = layout.unpack_from(rawdata, 4)
    return sec * NS_PER_S + nsec


def has_leading_header(typestore: Typestore, msgtype: str) -> bool:
    """Return whether msgtype's first field is a std_msgs/Header, so read_header_stamp applies."""
    fielddefs = typestore.fielddefs.get(msgtype)
    if not fielddefs or not fielddefs[1]:
        return False
    _name, (_kind, ref) = fielddefs[1][0]
    return ref == HEADER_TYPE
