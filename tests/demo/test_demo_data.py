"""The demo generator writes real, readable, deterministic bags, samples and an export."""

from __future__ import annotations

import itertools
import json
import statistics
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores

from src.demo import (
    EXPECTED_SAMPLES_PER_BAG,
    SIZES,
    DemoSummary,
    Labels,
    generate_demo,
    iter_files,
    plan_runs,
)
from src.demo.bags import DETECTIONS_TOPIC, FRAME_SIZE, IMAGE_TOPICS, IMAGE_TYPES, TRACKS_TOPIC
from src.demo.layout import parse_run_timestamp
from src.demo.png import SIGNATURE, decode_png_size, encode_png
from src.demo.samples import SAMPLE_SIZE
from src.demo.sim import CLASSES
from src.models.coordinate import RunCoordinate
from src.rosmsgs import VISION_MSGTYPES, vision_typestore

SEED = 7
PERCEPTION = (DETECTIONS_TOPIC, TRACKS_TOPIC)


@dataclass
class Demo:
    root: Path
    summary: DemoSummary

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def ml(self) -> Path:
        return self.root / "ml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def keys(self) -> dict[str, list[str]]:
        return {name: [key for key, _ in iter_files(self.root / name)] for name in ("raw", "ml", "data")}


@dataclass
class BagStats:
    counts: Counter[str] = field(default_factory=Counter)
    msgtypes: dict[str, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    image_stamps: list[int] = field(default_factory=list)
    track_seen: dict[str, list[int]] = field(default_factory=dict)
    detection_ids: set[str] = field(default_factory=set)
    track_ids: set[str] = field(default_factory=set)
    bad_boxes: list[tuple[float, ...]] = field(default_factory=list)
    classes: set[str] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)


def _generate(root: Path, seed: int = SEED) -> Demo:
    summary = generate_demo(root / "raw", root / "ml", root / "data", size="tiny", seed=seed)
    return Demo(root, summary)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return _generate(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def bag_stats(demo: Demo) -> dict[str, BagStats]:
    """Read every storage file once; keyed by its raw-bucket key."""
    typestore = vision_typestore()
    stats = {}
    for result in demo.summary.bag_results:
        stats[result.key] = _read_bag(demo.raw / result.key, typestore)
    return stats


def _stamp_ns(msg: object) -> int:
    stamp = msg.header.stamp  # type: ignore[attr-defined]
    return stamp.sec * 10**9 + stamp.nanosec


def _read_bag(path: Path, typestore: object) -> BagStats:
    stats = BagStats()
    width, height = FRAME_SIZE
    with AnyReader([path], default_typestore=typestore) as reader:  # type: ignore[arg-type]
        stats.msgtypes = {c.topic: c.msgtype for c in reader.connections}
        for conn, log_ns, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            stats.counts[conn.topic] += 1
            if conn.topic not in PERCEPTION:
                stats.image_stamps.append(_stamp_ns(msg))
                continue
            stats.latencies_ms.append((log_ns - _stamp_ns(msg)) / 1e6)
            for det in msg.detections:
                box = det.bbox
                x, y = box.center.position.x, box.center.position.y
                if not _inside(x, box.size_x, width) or not _inside(y, box.size_y, height):
                    stats.bad_boxes.append((x, y, box.size_x, box.size_y))
                stats.classes.add(det.results[0].hypothesis.class_id)
                stats.scores.append(det.results[0].hypothesis.score)
                if conn.topic == DETECTIONS_TOPIC:
                    stats.detection_ids.add(det.id)
                else:
                    stats.track_ids.add(det.id)
                    stats.track_seen.setdefault(det.id, []).append(_stamp_ns(msg))
    return stats


def _inside(center: float, size: float, limit: int) -> bool:
    return size > 0 and center - size / 2 >= -1e-9 and center + size / 2 <= limit + 1e-9


def test_summary_matches_files_on_disk(demo: Demo) -> None:
    raw_keys = demo.keys()["raw"]
    bag_files = [k for k in raw_keys if k.endswith((".bag", ".mcap"))]
    assert demo.summary.bags == len(bag_files) == len(demo.summary.bag_results)
    assert demo.summary.ros1_bags == sum(k.endswith(".bag") for k in bag_files) > 0
    assert demo.summary.ros2_bags == sum(k.endswith(".mcap") for k in bag_files) > 0
    assert demo.summary.samples == sum(k.endswith(".png") for k in demo.keys()["ml"])
    assert demo.summary.runs == len(plan_runs("tiny", SEED))
    assert demo.summary.bytes_raw == sum(p.stat().st_size for _, p in iter_files(demo.raw))
    assert demo.summary.bytes_ml == sum(p.stat().st_size for _, p in iter_files(demo.ml))
    assert 6 <= demo.summary.runs <= 10


def test_ros2_bags_are_folders_with_metadata_listing_their_mcaps(demo: Demo) -> None:
    folders = {r.recording for r in demo.summary.bag_results if r.fmt == "ros2"}
    assert folders
    for folder in folders:
        path = demo.raw / folder
        meta = (path / "metadata.yaml").read_text()
        mcaps = sorted(p.name for p in path.glob("*.mcap"))
        assert mcaps
        for name in mcaps:
            assert name in meta
        assert "storage_identifier: mcap" in meta


def test_every_bag_has_the_three_topics_with_the_right_types(demo: Demo, bag_stats: dict[str, BagStats]) -> None:
    for result in demo.summary.bag_results:
        image_kind = "raw" if IMAGE_TOPICS["raw"] in result.msgtypes else "compressed"
        expected = {
            IMAGE_TOPICS[image_kind]: IMAGE_TYPES[image_kind],
            DETECTIONS_TOPIC: "vision_msgs/msg/Detection2DArray",
            TRACKS_TOPIC: "vision_msgs/msg/Detection2DArray",
        }
        assert bag_stats[result.key].msgtypes == expected == result.msgtypes, result.key
    kinds = {topic for r in demo.summary.bag_results for topic in r.msgtypes}
    assert {IMAGE_TOPICS["raw"], IMAGE_TOPICS["compressed"]} <= kinds


def test_message_counts_match_what_the_generator_reports(demo: Demo, bag_stats: dict[str, BagStats]) -> None:
    for result in demo.summary.bag_results:
        assert dict(bag_stats[result.key].counts) == result.counts, result.key
        assert all(count > 0 for count in result.counts.values())


def test_whole_ros2_folders_open_and_sum_their_splits(demo: Demo) -> None:
    by_folder: dict[str, Counter[str]] = defaultdict(Counter)
    for result in demo.summary.bag_results:
        if result.fmt == "ros2":
            by_folder[result.recording].update(result.counts)
    for folder, expected in by_folder.items():
        with AnyReader([demo.raw / folder], default_typestore=vision_typestore()) as reader:
            assert {c.topic: c.msgcount for c in reader.connections} == dict(expected)


def test_ros1_bags_open_with_a_ros1_typestore(demo: Demo) -> None:
    ros1 = [r for r in demo.summary.bag_results if r.fmt == "ros1"]
    with AnyReader([demo.raw / ros1[0].key], default_typestore=vision_typestore(Stores.ROS1_NOETIC)) as reader:
        conn = next(c for c in reader.connections if c.topic == TRACKS_TOPIC)
        _, _, raw = next(reader.messages(connections=[conn]))
        assert reader.deserialize(raw, conn.msgtype).header.seq == 0


def test_perception_latency_is_between_20_and_150_ms(bag_stats: dict[str, BagStats]) -> None:
    latencies = [ms for stats in bag_stats.values() for ms in stats.latencies_ms]
    assert latencies
    assert min(latencies) >= 20.0
    assert max(latencies) <= 150.0


def test_tracks_carry_ids_and_detections_do_not(bag_stats: dict[str, BagStats]) -> None:
    detection_ids = set().union(*(s.detection_ids for s in bag_stats.values()))
    track_ids = set().union(*(s.track_ids for s in bag_stats.values()))
    assert detection_ids == {""}
    assert track_ids
    assert "" not in track_ids


def test_tracks_are_born_and_die_within_a_recording(bag_stats: dict[str, BagStats]) -> None:
    ended_early = 0
    for stats in bag_stats.values():
        if not stats.image_stamps:
            continue
        last = max(stats.image_stamps)
        ended_early += sum(max(seen) < last - 500_000_000 for seen in stats.track_seen.values())
    assert ended_early > 0
    assert sum(len(s.track_seen) for s in bag_stats.values()) > len(bag_stats)


def test_boxes_classes_and_scores_are_plausible(bag_stats: dict[str, BagStats]) -> None:
    assert all(not stats.bad_boxes for stats in bag_stats.values())
    classes = set().union(*(s.classes for s in bag_stats.values()))
    assert classes <= set(CLASSES)
    assert len(classes) >= 2
    scores = [score for s in bag_stats.values() for score in s.scores]
    assert min(scores) > 0.0 and max(scores) <= 1.0


def test_frame_rates_jitter_drops_and_gaps(bag_stats: dict[str, BagStats]) -> None:
    # Whole runs, not files: a gap may straddle the split between two bags.
    runs: dict[str, list[int]] = defaultdict(list)
    for key in sorted(bag_stats):
        runs["/".join(key.split("/")[:6])].extend(bag_stats[key].image_stamps)
    longest_gap_s = 0.0
    for coord, stamps in runs.items():
        assert stamps == sorted(stamps), coord
        deltas = [(b - a) / 1e9 for a, b in itertools.pairwise(stamps)]
        assert min(deltas) > 0
        rate = 1 / statistics.median(deltas)
        assert 9.5 <= rate <= 31.0, (coord, rate)
        assert len(set(deltas)) > 1  # jitter
        longest_gap_s = max(longest_gap_s, max(deltas))
    assert longest_gap_s >= 2.0  # at least one run has a multi-second gap


def test_images_are_tiny_frames(demo: Demo) -> None:
    typestore = vision_typestore()
    seen = set()
    for result in demo.summary.bag_results:
        with AnyReader([demo.raw / result.key], default_typestore=typestore) as reader:
            conn = next(c for c in reader.connections if c.topic not in PERCEPTION)
            _, _, raw = next(reader.messages(connections=[conn]))
            msg = reader.deserialize(raw, conn.msgtype)
        if conn.msgtype == IMAGE_TYPES["raw"]:
            assert (msg.width, msg.height, msg.encoding) == (*FRAME_SIZE, "mono8")
            assert len(msg.data) == msg.step * msg.height
        else:
            assert msg.format == "png"
            assert decode_png_size(bytes(msg.data)) == FRAME_SIZE
        seen.add(conn.msgtype)
    assert seen == set(IMAGE_TYPES.values())


def test_same_seed_is_byte_identical_and_other_seed_differs(demo: Demo, tmp_path: Path) -> None:
    again = _generate(tmp_path / "again")
    other = _generate(tmp_path / "other", seed=SEED + 1)
    assert again.keys() == demo.keys()
    for name in ("raw", "ml", "data"):
        for key, path in iter_files(demo.root / name):
            assert (again.root / name / key).read_bytes() == path.read_bytes(), key
    assert other.keys() != demo.keys()


def test_regenerating_in_place_replaces_files(demo: Demo, tmp_path: Path) -> None:
    first = _generate(tmp_path / "same")
    second = _generate(tmp_path / "same")
    assert first.keys() == second.keys() == demo.keys()
    assert second.summary.bags == first.summary.bags


def test_in_flight_objects_exist_but_do_not_count(demo: Demo) -> None:
    in_flight = demo.summary.in_flight
    assert any(key.endswith(".bag.active") for key in in_flight)
    assert any(key.endswith(".tmp") for key in in_flight)
    bag_keys = {r.key for r in demo.summary.bag_results}
    for key in in_flight:
        assert (demo.raw / key).is_file()
        assert (demo.raw / key).stat().st_size > 0
        assert key not in bag_keys


def test_export_tracking_points_at_existing_unuploaded_samples(demo: Demo) -> None:
    tracking = json.loads((demo.data / "ml" / ".export_tracking.json").read_text())
    entry = tracking[demo.summary.export_id]
    assert set(entry) == {"created_at", "source", "coordinates", "sample_count", "uploaded", "uploaded_at"}
    assert entry["uploaded"] is False and entry["uploaded_at"] is None
    datetime.fromisoformat(entry["created_at"])
    assert 2 <= len(entry["coordinates"]) <= 3
    export = demo.data / "ml" / "exports" / demo.summary.export_id
    pngs = [key for key, _ in iter_files(export) if key.endswith(".png")]
    assert entry["sample_count"] == len(pngs) == demo.summary.export_samples > 0
    ml_coords = _sample_coords(demo.ml)
    for coord in entry["coordinates"]:
        RunCoordinate.from_path(coord)
        assert (export / coord).is_dir()
        assert coord not in ml_coords  # not yet uploaded to the ML bucket
    assert not list((demo.data / "ml").glob(".*.partial"))


def test_one_coordinate_has_samples_but_no_bags(demo: Demo) -> None:
    raw_coords = {"/".join(key.split("/")[:6]) for key in demo.keys()["raw"]}
    orphans = _sample_coords(demo.ml) - raw_coords
    planned = {str(r.coord) for r in plan_runs("tiny", SEED) if r.labels is Labels.SAMPLES_ONLY}
    assert orphans == planned
    assert len(orphans) == 1


def test_samples_per_bag_follow_the_labelling_plan(demo: Demo) -> None:
    per_coord = Counter("/".join(key.split("/")[:6]) for key in demo.keys()["ml"] if key.endswith(".png"))
    for run in plan_runs("tiny", SEED):
        got = per_coord.get(str(run.coord), 0)
        expected = EXPECTED_SAMPLES_PER_BAG * len(run.bag_seconds)
        if run.labels in (Labels.FULL, Labels.SAMPLES_ONLY):
            assert abs(got - expected) <= 2 * len(run.bag_seconds), run.coord
        elif run.labels is Labels.UNDER:
            assert 0.15 * expected <= got <= 0.45 * expected, run.coord
        else:
            assert got == 0, run.coord


def test_every_sample_has_a_valid_sidecar(demo: Demo) -> None:
    keys = set(demo.keys()["ml"])
    pngs = [key for key in keys if key.endswith(".png")]
    assert pngs
    assert {key[:-4] for key in pngs} == {key[:-5] for key in keys if key.endswith(".json")}
    for key in pngs[:40]:
        data = (demo.ml / key).read_bytes()
        assert decode_png_size(data) == SAMPLE_SIZE
        label = json.loads((demo.ml / (key[:-4] + ".json")).read_text())
        assert label["image"] == key.rsplit("/", 1)[-1]
        for box in label["boxes"]:
            x, y, w, h = box["bbox"]
            assert box["class"] in CLASSES
            assert x >= 0 and y >= 0 and w >= 1 and h >= 1
            assert x + w <= SAMPLE_SIZE[0] and y + h <= SAMPLE_SIZE[1]


def test_coordinates_are_valid_with_mixed_timestamp_forms(demo: Demo) -> None:
    coords = [r.coord for r in plan_runs("tiny", SEED)]
    assert {c.cid for c in coords} == {"acme", "globex"}
    forms = Counter(_timestamp_form(c.timestamp) for c in coords)
    assert forms["unparseable"] >= 1 and forms["compact"] >= 1 and forms["iso"] >= forms["compact"]
    for key in demo.keys()["raw"] + demo.keys()["ml"]:
        RunCoordinate.from_path("/".join(key.split("/")[:6]))


def test_header_stamps_follow_the_timestamp_folder(demo: Demo, bag_stats: dict[str, BagStats]) -> None:
    for result in demo.summary.bag_results:
        folder = parse_run_timestamp(result.key.split("/")[5])
        stamps = bag_stats[result.key].image_stamps
        if folder is not None and stamps:
            offset_s = min(stamps) / 1e9 - folder.timestamp()
            assert 0 <= offset_s < 120, result.key


@pytest.mark.parametrize(("size", "low", "high"), [("tiny", 6, 10), ("small", 60, 120), ("medium", 400, 600)])
def test_plan_sizes(size: str, low: int, high: int) -> None:
    runs = plan_runs(size, SEED)
    assert low <= len(runs) <= high
    assert len({r.coord for r in runs}) == len(runs)
    assert {r.labels for r in runs} == set(Labels)
    assert {r.fmt for r in runs} == {"ros1", "ros2"}
    assert all(9.9 <= r.rate_hz <= 30.1 for r in runs)
    assert any(r.gaps for r in runs if r.has_bags)
    assert size in SIZES


def test_png_encoder_round_trips() -> None:
    pixels = bytes(range(12))
    png = encode_png(2, 2, pixels, channels=3)
    assert png.startswith(SIGNATURE)
    assert decode_png_size(png) == (2, 2)
    idat = png.index(b"IDAT")
    length = int.from_bytes(png[idat - 4 : idat], "big")
    raw = zlib.decompress(png[idat + 4 : idat + 4 + length])
    assert raw == b"\x00" + pixels[:6] + b"\x00" + pixels[6:]
    assert encode_png(2, 2, pixels, channels=3) == png
    with pytest.raises(ValueError, match="expected"):
        encode_png(3, 2, pixels, channels=3)


@pytest.mark.parametrize("base", [Stores.ROS2_HUMBLE, Stores.ROS1_NOETIC])
def test_vision_typestore_registers_and_round_trips(base: Stores) -> None:
    typestore = vision_typestore(base)
    assert set(VISION_MSGTYPES) <= set(typestore.fielddefs)
    t = typestore.types
    header_kwargs = {"seq": 3} if base is Stores.ROS1_NOETIC else {}
    header = t["std_msgs/msg/Header"](
        **header_kwargs, stamp=t["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="cam"
    )
    box = t["vision_msgs/msg/BoundingBox2D"](
        center=t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=1.5, y=2.5), theta=0.0),
        size_x=3.0,
        size_y=4.0,
    )
    msg = t["vision_msgs/msg/Detection2DArray"](
        header=header,
        detections=[t["vision_msgs/msg/Detection2D"](header=header, results=[], bbox=box, id="42")],
    )
    name = "vision_msgs/msg/Detection2DArray"
    if base is Stores.ROS1_NOETIC:
        back = typestore.deserialize_ros1(typestore.serialize_ros1(msg, name), name)
    else:
        back = typestore.deserialize_cdr(typestore.serialize_cdr(msg, name), name)
    assert back.detections[0].id == "42"
    assert back.detections[0].bbox.center.position.x == 1.5


def _timestamp_form(name: str) -> str:
    if parse_run_timestamp(name) is None:
        return "unparseable"
    return "iso" if "T" in name else "compact"


def _sample_coords(root: Path) -> set[str]:
    return {"/".join(key.split("/")[:6]) for key, _ in iter_files(root) if key.endswith(".png")}
