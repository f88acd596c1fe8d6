"""The project's own ROS message definitions, for types rosbags does not ship."""

from __future__ import annotations

from pathlib import Path

from rosbags.interfaces.typing import Typesdict
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSG_ROOT = Path(__file__).parent / "msg"
VISION_PACKAGE = "vision_msgs"

# The types the .msg files define; tests and the extractor check a typestore against this.
VISION_MSGTYPES: tuple[str, ...] = (
    "vision_msgs/msg/BoundingBox2D",
    "vision_msgs/msg/Detection2D",
    "vision_msgs/msg/Detection2DArray",
    "vision_msgs/msg/ObjectHypothesis",
    "vision_msgs/msg/ObjectHypothesisWithPose",
    "vision_msgs/msg/Point2D",
    "vision_msgs/msg/Pose2D",
)


def vision_types() -> Typesdict:
    """Parse the vision_msgs .msg files into a rosbags types dict."""
    types: Typesdict = {}
    for path in sorted((MSG_ROOT / VISION_PACKAGE).glob("*.msg")):
        msgtype = f"{VISION_PACKAGE}/msg/{path.stem}"
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), msgtype))
    return types


def vision_typestore(base: Stores = Stores.ROS2_HUMBLE) -> Typestore:
    """Return a fresh typestore for base with the vision_msgs types registered."""
    typestore = get_typestore(base)
    typestore.register(vision_types())
    return typestore


def ros1_vision_typestore() -> Typestore:
    """Return a ROS1 Noetic typestore with the vision_msgs types, for writing ROS1 bags."""
    return vision_typestore(Stores.ROS1_NOETIC)


__all__ = [
    "VISION_MSGTYPES",
    "ros1_vision_typestore",
    "vision_types",
    "vision_typestore",
]
