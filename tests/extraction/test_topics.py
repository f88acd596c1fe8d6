"""Topic choice: the documented rules, overrides, and what metadata records about them."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.extraction import ExtractionError
from src.extraction.reader import (
    DETECTIONS,
    FRAMES,
    TRACKING,
    BagInfo,
    BagSource,
    IdSample,
    Survey,
    choose_topics,
)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
DET = "vision_msgs/msg/Detection2DArray"
POSE = "geometry_msgs/msg/Pose"
IMU = "sensor_msgs/msg/Imu"


def _survey(topics: dict[str, tuple[str, int]], samples: dict[str, IdSample] | None = None) -> Survey:
    """Build a one-bag survey holding topics."""
    source = BagSource(Path("a.bag"), "a.bag", "ros1", "rosbag1", (Path("a.bag"),))
    headers = {IMAGE: True, COMPRESSED: True, DET: True, POSE: False, IMU: True}
    info = BagInfo(source, 1, 2, sum(n for _, n in topics.values()), topics, headers)
    return Survey(bags=[info], samples=samples or {})


def _choose(survey: Survey, **overrides: str) -> dict:
    """Choose with overrides given per role."""
    return choose_topics(survey, {role: overrides.get(role) for role in (FRAMES, DETECTIONS, TRACKING)})


def test_frames_most_messages_then_raw_image_then_name() -> None:
    found = _survey({"/b": (IMAGE, 5), "/a": (IMAGE, 3), "/c": (COMPRESSED, 9)})
    choice = _choose(found)[FRAMES]
    assert (choice.topic, choice.count, choice.source) == ("/c", 9, "auto")
    assert [a["topic"] for a in choice.alternatives] == ["/b", "/a"]
    tie = _survey({"/z/compressed": (COMPRESSED, 4), "/z/raw": (IMAGE, 4), "/y/raw": (IMAGE, 4)})
    choice = _choose(tie)[FRAMES]
    assert choice.topic == "/y/raw"
    assert [a["topic"] for a in choice.alternatives] == ["/z/raw", "/z/compressed"]
    assert "most messages" in choice.reason


def test_detections_and_tracking_told_apart_by_ids() -> None:
    samples = {
        "/objects": IdSample(messages=4, detections=12, with_ids=0),
        "/objects_tracked": IdSample(messages=4, detections=12, with_ids=12),
        "/objects_old": IdSample(messages=4, detections=10, with_ids=0),
    }
    found = _survey(
        {"/cam": (IMAGE, 10), "/objects": (DET, 10), "/objects_tracked": (DET, 10), "/objects_old": (DET, 3)}, samples
    )
    choices = _choose(found)
    assert choices[DETECTIONS].topic == "/objects"
    assert [a["topic"] for a in choices[DETECTIONS].alternatives] == ["/objects_old"]
    assert choices[TRACKING].topic == "/objects_tracked"
    assert "12/12 sampled detections carry an id" in choices[TRACKING].reason


def test_empty_samples_fall_back_on_the_name() -> None:
    samples = {"/a/tracks": IdSample(messages=50), "/a/dets": IdSample(messages=50)}
    choices = _choose(_survey({"/cam": (IMAGE, 1), "/a/tracks": (DET, 50), "/a/dets": (DET, 50)}, samples))
    assert choices[TRACKING].topic == "/a/tracks" and choices[DETECTIONS].topic == "/a/dets"
    assert "decided by name" in choices[TRACKING].reason


def test_only_images() -> None:
    choices = _choose(_survey({"/cam": (IMAGE, 3), "/imu": (IMU, 30)}))
    assert choices[FRAMES].topic == "/cam"
    for role in (DETECTIONS, TRACKING):
        assert choices[role].topic is None and choices[role].source == "none found"


def test_overrides() -> None:
    samples = {"/dets": IdSample(1, 10, 0), "/tracks": IdSample(1, 10, 10)}
    found = _survey({"/cam": (IMAGE, 3), "/cam2": (IMAGE, 1), "/dets": (DET, 3), "/tracks": (DET, 3)}, samples)
    choices = _choose(found, frames="/cam2", detections="/tracks")
    assert choices[FRAMES].topic == "/cam2" and choices[FRAMES].source == "override"
    assert choices[DETECTIONS].topic == "/tracks"
    # The overridden topic is taken: the only id-carrying candidate is gone, so no tracking topic.
    assert choices[TRACKING].topic is None
    assert _choose(found, tracking="NONE")[TRACKING].source == "disabled"
    # A topic with a header that is no image may serve as the frames' time base; a type without one may not.
    assert _choose(_survey({"/imu": (IMU, 5)}), frames="/imu")[FRAMES].topic == "/imu"
    with pytest.raises(ExtractionError, match="no std_msgs/Header"):
        _choose(_survey({"/cam": (IMAGE, 3), "/pose": (POSE, 3)}), frames="/pose")
    with pytest.raises(ExtractionError, match=r"/nope is not in the run; topics: /dets \(vision_msgs"):
        _choose(found, detections="/nope")
    with pytest.raises(ExtractionError, match="expected vision_msgs/msg/Detection2DArray"):
        _choose(found, tracking="/cam")
    with pytest.raises(ExtractionError, match="cannot be disabled"):
        _choose(found, frames="none")


def test_no_image_topic_error_lists_what_is_there() -> None:
    topics = {f"/t{i}": (IMU, 1) for i in range(10)}
    with pytest.raises(ExtractionError) as err:
        _choose(_survey(topics))
    message = str(err.value)
    assert message.startswith("no image topic (sensor_msgs/msg/Image or sensor_msgs/msg/CompressedImage) in the run")
    assert "and 4 more" in message and "\n" not in message


def test_type_conflicts_are_reported() -> None:
    found = _survey({"/cam": (IMAGE, 3)})
    other = BagInfo(found.bags[0].source, 3, 4, 1, {"/cam": (COMPRESSED, 1)}, {COMPRESSED: True})
    found.bags.append(other)
    assert found.topics()["/cam"] == (IMAGE, 3)
    assert found.type_conflicts() == [
        f"topic /cam has several types ({COMPRESSED}, {IMAGE}); only its most frequent one is read"
    ]
