"""Write a run's frames as real ROS1 .bag files or ROS2 MCAP bag folders with rosbags."""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import numpy as np
from rosbags import rosbag1, rosbag2
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.typesys.store import Typestore
from ruamel.yaml import YAML

from src.demo.files import clear, partial_path, publish, tree_size, write_atomic
from src.demo.layout import BagFile, RunPlan
from src.demo.png import encode_png
from src.demo.render import render
from src.demo.sim import Box, Frame
from src.rosmsgs import VISION_MSGTYPES

IMAGE_TOPICS = {"raw": "/camera/image_raw", "compressed": "/camera/image/compressed"}
IMAGE_TYPES = {"raw": "sensor_msgs/msg/Image", "compressed": "sensor_msgs/msg/CompressedImage"}
DETECTIONS_TOPIC = "/perception/detections"
TRACKS_TOPIC = "/perception/tracks"
DETECTION_TYPE = "vision_msgs/msg/Detection2DArray"
FRAME_ID = "camera_optical_frame"
FRAME_SIZE = (16, 12)  # tiny frames keep the demo small; boxes are in these pixels
ROSBAG2_VERSION = 9
CALLERS = {"image": "/camera_driver", "det": "/detector", "track": "/tracker"}


@dataclass(frozen=True)
class BagResult:
    """What the generator wrote into one storage file."""

    key: str  # storage file key in the raw bucket
    recording: str  # the .bag key, or the ROS2 bag folder key
    fmt: str
    counts: dict[str, int]  # topic -> messages
    msgtypes: dict[str, str] = field(default_factory=dict)  # topic -> msgtype
    size: int = 0


class MessageCodec:
    """Build and serialize the three message kinds for one typestore."""

    def __init__(self, typestore: Typestore, ros1: bool) -> None:
        self.t = typestore.types
        self.ros1 = ros1
        self.serialize = typestore.serialize_ros1 if ros1 else typestore.serialize_cdr
        self.vision = {name.rsplit("/", 1)[1]: self.t[name] for name in VISION_MSGTYPES}
        geo = "geometry_msgs/msg/"
        # Detectors leave the hypothesis pose empty; one shared instance is only ever read.
        self.pose = self.t[f"{geo}PoseWithCovariance"](
            pose=self.t[f"{geo}Pose"](
                position=self.t[f"{geo}Point"](x=0.0, y=0.0, z=0.0),
                orientation=self.t[f"{geo}Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
            covariance=np.zeros(36, dtype=np.float64),
        )

    def header(self, stamp_ns: int, seq: int) -> object:
        """Return a Header; ROS1 headers carry a sequence number."""
        stamp = self.t["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        if self.ros1:
            return self.t["std_msgs/msg/Header"](seq=seq, stamp=stamp, frame_id=FRAME_ID)
        return self.t["std_msgs/msg/Header"](stamp=stamp, frame_id=FRAME_ID)

    def image(self, frame: Frame, seq: int, kind: str) -> memoryview:
        """Serialize the frame as a mono8 Image or a PNG CompressedImage."""
        width, height = FRAME_SIZE
        pixels = render(frame.truth, width, height, phase=frame.seq)
        header = self.header(frame.stamp_ns, seq)
        if kind == "raw":
            data = np.frombuffer(pixels, dtype=np.uint8)
            msg = self.t["sensor_msgs/msg/Image"](header, height, width, "mono8", 0, width, data)
        else:
            data = np.frombuffer(encode_png(width, height, pixels), dtype=np.uint8)
            msg = self.t["sensor_msgs/msg/CompressedImage"](header, "png", data)
        return self.serialize(msg, IMAGE_TYPES[kind])

    def detections(
        self,
        stamp_ns: int,
        seq: int,
        boxes: tuple[Box, ...],
        with_ids: bool,
        frame_size: tuple[int, int] = FRAME_SIZE,
    ) -> memoryview:
        """Serialize boxes as a Detection2DArray in frame pixels; only tracks carry ids."""
        width, height = frame_size
        v = self.vision
        header = self.header(stamp_ns, seq)
        detections = [
            v["Detection2D"](
                header=header,
                results=[
                    v["ObjectHypothesisWithPose"](
                        hypothesis=v["ObjectHypothesis"](class_id=box.cls, score=box.score), pose=self.pose
                    )
                ],
                bbox=v["BoundingBox2D"](
                    center=v["Pose2D"](position=v["Point2D"](x=box.cx * width, y=box.cy * height), theta=0.0),
                    size_x=box.w * width,
                    size_y=box.h * height,
                ),
                id=str(box.track_id) if with_ids else "",
            )
            for box in boxes
        ]
        return self.serialize(v["Detection2DArray"](header=header, detections=detections), DETECTION_TYPE)


def write_run_bags(
    run: RunPlan, frames: list[Frame], run_dir: Path, stores: dict[str, Typestore]
) -> tuple[list[BagResult], list[str]]:
    """Write the run's bags under run_dir; return their results and any in-flight keys."""
    files = run.bag_files()
    typestore = stores[run.fmt]
    parts = _split(_events(run, frames, MessageCodec(typestore, run.fmt == "ros1")), files)
    prefix = run.coord.to_path_str()
    run_dir.mkdir(parents=True, exist_ok=True)
    if run.fmt == "ros1":
        for bag, events in zip(files, parts, strict=True):
            final = run_dir / bag.key
            tmp = partial_path(final)
            clear(tmp)
            _write_ros1(tmp, typestore, run, events)
            publish(tmp, final)
    else:
        _write_ros2(run_dir / files[0].recording, typestore, run, files, parts)
    results = [
        BagResult(
            key=f"{prefix}/{bag.key}",
            recording=f"{prefix}/{bag.recording}",
            fmt=run.fmt,
            counts=dict(Counter(topic for _, topic, _ in events)),
            msgtypes=_msgtypes(run),
            size=tree_size(run_dir / bag.key),
        )
        for bag, events in zip(files, parts, strict=True)
    ]
    return results, _write_in_flight(run, run_dir, files)


Event = tuple[int, str, memoryview]  # (receive time ns, topic, serialized message)


def _msgtypes(run: RunPlan) -> dict[str, str]:
    """Return topic -> msgtype for the run's three topics."""
    return {
        IMAGE_TOPICS[run.image]: IMAGE_TYPES[run.image],
        DETECTIONS_TOPIC: DETECTION_TYPE,
        TRACKS_TOPIC: DETECTION_TYPE,
    }


def _events(run: RunPlan, frames: list[Frame], codec: MessageCodec) -> list[Event]:
    """Serialize every message and order them the way a recorder receives them."""
    topic = IMAGE_TOPICS[run.image]
    events: list[tuple[int, int, str, memoryview]] = []
    seqs = Counter[str]()  # ROS1 header seq: one counter per publisher
    for frame in frames:
        events.append((frame.image_log_ns, 0, topic, codec.image(frame, seqs[topic], run.image)))
        seqs[topic] += 1
        if frame.detections is not None:
            data = codec.detections(frame.stamp_ns, seqs[DETECTIONS_TOPIC], frame.detections, with_ids=False)
            events.append((frame.det_log_ns, 1, DETECTIONS_TOPIC, data))
            seqs[DETECTIONS_TOPIC] += 1
        if frame.tracks is not None:
            data = codec.detections(frame.stamp_ns, seqs[TRACKS_TOPIC], frame.tracks, with_ids=True)
            events.append((frame.track_log_ns, 2, TRACKS_TOPIC, data))
            seqs[TRACKS_TOPIC] += 1
    events.sort(key=lambda e: (e[0], e[1]))
    return [(log_ns, name, data) for log_ns, _, name, data in events]


def _split(events: list[Event], files: list[BagFile]) -> list[list[Event]]:
    """Assign messages to storage files by receive time, as a splitting recorder does."""
    parts: list[list[Event]] = [[] for _ in files]
    index = 0
    for event in events:
        while index + 1 < len(files) and event[0] >= files[index].end_ns:
            index += 1
        parts[index].append(event)
    return parts


def _write_ros1(path: Path, typestore: Typestore, run: RunPlan, events: list[Event]) -> None:
    """Write one ROS1 bag, chunk-compressed as the plan says."""
    writer = rosbag1.Writer(path)
    if run.compression != "none":
        writer.set_compression(rosbag1.Writer.CompressionFormat[run.compression.upper()])
    callers = dict(zip(_msgtypes(run), CALLERS.values(), strict=True))
    with writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=typestore, callerid=callers[topic])
            for topic, msgtype in _msgtypes(run).items()
        }
        for log_ns, topic, data in events:
            writer.write(conns[topic], log_ns, data)


def _write_ros2(
    final: Path, typestore: Typestore, run: RunPlan, files: list[BagFile], parts: list[list[Event]]
) -> None:
    """Write a ROS2 bag folder holding one .mcap per split and a merged metadata.yaml."""
    tmp = partial_path(final)
    clear(tmp)
    scratch = tmp / ".parts"
    infos = []
    for bag, events in zip(files, parts, strict=True):
        # rosbags names the storage file after its folder, so each split gets a folder of its name.
        part_dir = scratch / bag.stem
        writer = rosbag2.Writer(part_dir, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
        if run.compression == "zstd":
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        with writer:
            conns = {
                topic: writer.add_connection(topic, msgtype, typestore=typestore)
                for topic, msgtype in _msgtypes(run).items()
            }
            for log_ns, topic, data in events:
                writer.write(conns[topic], log_ns, data)
        (part_dir / f"{bag.stem}.mcap").replace(tmp / f"{bag.stem}.mcap")
        infos.append(_yaml().load((part_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"])
    shutil.rmtree(scratch)
    (tmp / "metadata.yaml").write_text(_merge_metadata(infos), encoding="utf-8")
    publish(tmp, final)


def _merge_metadata(infos: list[dict]) -> str:
    """Merge per-split rosbag2 metadata into one, as ros2 bag record writes for split bags."""
    merged = dict(infos[0])
    starts = [info["starting_time"]["nanoseconds_since_epoch"] for info in infos if info["message_count"]]
    ends = [
        info["starting_time"]["nanoseconds_since_epoch"] + info["duration"]["nanoseconds"]
        for info in infos
        if info["message_count"]
    ]
    start = min(starts, default=0)
    counts = Counter[str]()
    for info in infos:
        for topic in info["topics_with_message_count"]:
            counts[topic["topic_metadata"]["name"]] += topic["message_count"]
    merged["relative_file_paths"] = [path for info in infos for path in info["relative_file_paths"]]
    merged["files"] = [entry for info in infos for entry in info["files"]]
    merged["starting_time"] = {"nanoseconds_since_epoch": start}
    merged["duration"] = {"nanoseconds": max(ends, default=start) - start}
    merged["message_count"] = sum(info["message_count"] for info in infos)
    merged["topics_with_message_count"] = [
        {**topic, "message_count": counts[topic["topic_metadata"]["name"]]}
        for topic in infos[0]["topics_with_message_count"]
    ]
    stream = StringIO()
    _yaml().dump({"rosbag2_bagfile_information": merged}, stream)
    return stream.getvalue()


def _yaml() -> YAML:
    """Return a YAML instance configured like the rosbags writer's, minus line folding."""
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    yaml.width = 4096  # keep long type hashes on one line
    return yaml


def _write_in_flight(run: RunPlan, run_dir: Path, files: list[BagFile]) -> list[str]:
    """Leave a half-written object beside the bags, as seen while a recorder is still running."""
    if not run.in_flight:
        return []
    last = run_dir / files[-1].key
    n = len(files)
    if run.in_flight == "active":
        # rosbag record writes the next split as name.bag.active and renames it when closed.
        key = f"{files[-1].stem.rsplit('_', 1)[0] if n > 1 else files[-1].stem}_{n}.bag.active"
    else:
        key = f"{files[-1].recording}/{files[-1].recording}_{n}.mcap.tmp"
    data = last.read_bytes()
    write_atomic(run_dir / key, data[: len(data) * 3 // 5])
    return [f"{run.coord.to_path_str()}/{key}"]
