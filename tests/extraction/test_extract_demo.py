"""extract_run on the generated demo: exact counts, stamps, latencies and tracks the generator knows."""

from __future__ import annotations

import base64
import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import google_crc32c
import pandas as pd
import pytest

from src.demo.bags import DETECTIONS_TOPIC, FRAME_SIZE, IMAGE_TOPICS, TRACKS_TOPIC
from src.demo.sim import simulate
from src.extraction import CONTRACT_VERSION, OPTIONAL_OUTPUT_FILES, OUTPUT_FILES, ExtractionSummary, extract_run
from src.extraction import reader as reader_module
from src.extraction import writer as writer_module
from src.models.state import EXPECTED_EXTRACTION_FILES
from tests.extraction.conftest import Demo, DemoRun

FRAMES_COLUMNS = ["bag", "topic", "stamp_ns", "receive_ns", "frame_index"]
DETECTION_COLUMNS = ["bag", "message_index", "stamp_ns", "receive_ns", "class_id", "score", "cx", "cy", "w", "h"]
TRACKING_COLUMNS = [*DETECTION_COLUMNS[:4], "track_id", *DETECTION_COLUMNS[4:]]
STRINGS = {"bag": str, "topic": str, "class_id": str, "track_id": str}


def _read(out: Path, name: str) -> pd.DataFrame:
    """Read an output CSV the way the contract says: ids as strings, stamps as int64."""
    numbers = {column: [""] for column in ("score", "cx", "cy", "w", "h")}
    return pd.read_csv(out / name, dtype=STRINGS, keep_default_na=False, na_values=numbers)


@pytest.fixture(scope="module")
def extracted(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, tuple[DemoRun, ExtractionSummary]]:
    """Extract every demo run once for the module."""
    out_root = tmp_path_factory.mktemp("extracted")
    results = {}
    for index, run in enumerate(demo.runs):
        out = out_root / f"run{index}"
        results[out] = (run, extract_run(run.path, out))
    return results


def test_outputs_are_the_contract_files(extracted: dict) -> None:
    assert set(OUTPUT_FILES) == set(EXPECTED_EXTRACTION_FILES)
    for out in extracted:
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES + OPTIONAL_OUTPUT_FILES)
        with (out / "frames.csv").open() as fh:
            assert next(csv.reader(fh)) == FRAMES_COLUMNS
        with (out / "detections.csv").open() as fh:
            assert next(csv.reader(fh)) == DETECTION_COLUMNS
        with (out / "tracking.csv").open() as fh:
            assert next(csv.reader(fh)) == TRACKING_COLUMNS


def test_exact_row_counts_per_file_and_per_bag(extracted: dict) -> None:
    for out, (run, summary) in extracted.items():
        image_topic = IMAGE_TOPICS[run.plan.image]
        frames, dets, tracks = _read(out, "frames.csv"), _read(out, "detections.csv"), _read(out, "tracking.csv")
        det_json = json.loads((out / "detections.json").read_text())
        track_json = json.loads((out / "tracking.json").read_text())
        assert len(frames) == summary.frames == run.count(image_topic)
        assert len(det_json["messages"]) == summary.detection_messages == run.count(DETECTIONS_TOPIC)
        assert len(track_json["messages"]) == summary.tracking_messages == run.count(TRACKS_TOPIC)
        # One row per object, and one empty row per message without objects.
        assert summary.detections == sum(len(m["detections"]) for m in det_json["messages"])
        assert summary.tracks == sum(len(m["tracks"]) for m in track_json["messages"])
        assert len(dets) == sum(max(1, len(m["detections"])) for m in det_json["messages"])
        assert len(tracks) == sum(max(1, len(m["tracks"])) for m in track_json["messages"])
        assert dets["message_index"].nunique() == summary.detection_messages
        assert tracks["message_index"].nunique() == summary.tracking_messages
        # Rows name the storage file they came from: per-bag counts are the generator's.
        per_bag = Counter(frames["bag"])
        assert per_bag == {run.bag_name(bag): bag.counts[image_topic] for bag in run.bags}
        det_msgs = Counter(m["bag"] for m in det_json["messages"])
        assert det_msgs == {run.bag_name(bag): bag.counts[DETECTIONS_TOPIC] for bag in run.bags}
        assert list(frames["frame_index"]) == list(range(len(frames)))
        assert set(frames["topic"]) == {image_topic}


def test_stamps_monotonic_per_bag_and_bags_in_time_order(extracted: dict) -> None:
    for out, (run, _summary) in extracted.items():
        frames = _read(out, "frames.csv")
        for _bag, group in frames.groupby("bag", sort=False):
            assert group["stamp_ns"].is_monotonic_increasing
            assert group["receive_ns"].is_monotonic_increasing
        # Splits come in recording order, so the whole run is ordered too.
        assert frames["stamp_ns"].is_monotonic_increasing
        assert list(dict.fromkeys(frames["bag"])) == [run.bag_name(bag) for bag in run.bags]
        # The image arrives 1-6 ms after its stamp in the generator.
        assert ((frames["receive_ns"] - frames["stamp_ns"]).between(1_000_000, 6_000_000)).all()


def test_detection_latency_and_json_matches_csv(extracted: dict) -> None:
    for out, _ in extracted.items():
        for name, key in (("detections", "detections"), ("tracking", "tracks")):
            rows = _read(out, f"{name}.csv")
            latency_ms = (rows["receive_ns"] - rows["stamp_ns"]) / 1e6
            assert latency_ms.between(20, 150).all(), name
            doc = json.loads((out / f"{name}.json").read_text())
            assert doc["contract_version"] == CONTRACT_VERSION
            assert doc["message_count"] == len(doc["messages"])
            assert doc["object_count"] == (rows["class_id"] != "").sum()
            expected = []
            for m in doc["messages"]:
                head = (m["bag"], m["message_index"], m["stamp_ns"], m["receive_ns"])
                expected += [(*head, item["class_id"], item["cx"]) for item in m[key]] or [(*head, "", None)]
            found = [
                (*row[:5], None if pd.isna(row[5]) else row[5])
                for row in rows[["bag", "message_index", "stamp_ns", "receive_ns", "class_id", "cx"]].itertuples(
                    index=False
                )
            ]
            assert found == expected
            assert [m["message_index"] for m in doc["messages"]] == list(range(len(doc["messages"])))


def test_tracks_match_the_generator(extracted: dict) -> None:
    width, height = FRAME_SIZE
    checked = 0
    for out, (run, _summary) in extracted.items():
        rows = _read(out, "tracking.csv")
        rows = rows[rows["class_id"] != ""]  # the empty rows stand for messages without tracks
        assert (rows["track_id"] != "").all()
        found = {(r.stamp_ns, r.track_id): r for r in rows.itertuples(index=False)}
        expected = {
            (frame.stamp_ns, str(box.track_id)): box
            for frame in simulate(run.plan)
            if frame.tracks is not None
            for box in frame.tracks
        }
        assert found.keys() == expected.keys()
        for key, box in expected.items():
            row = found[key]
            assert row.class_id == box.cls
            assert row.score == pytest.approx(box.score)
            assert (row.cx, row.cy) == (pytest.approx(box.cx * width), pytest.approx(box.cy * height))
            assert (row.w, row.h) == (pytest.approx(box.w * width), pytest.approx(box.h * height))
            checked += 1
        # Detections carry no ids; their per-frame counts are the generator's.
        dets = _read(out, "detections.csv")
        per_stamp = Counter(dets[dets["class_id"] != ""]["stamp_ns"])
        for frame in simulate(run.plan):
            if frame.detections is not None:
                assert per_stamp.get(frame.stamp_ns, 0) == len(frame.detections)
    assert checked > 500


def test_metadata(extracted: dict) -> None:
    for out, (run, summary) in extracted.items():
        meta = json.loads((out / "metadata.json").read_text())
        assert meta["contract_version"] == CONTRACT_VERSION
        assert meta["extractor"]["version"] and meta["extractor"]["rosbags"]
        assert [bag["path"] for bag in meta["bags"]] == [run.bag_name(bag) for bag in run.bags]
        for entry, bag in zip(meta["bags"], run.bags, strict=True):
            path = run.path / entry["path"]
            assert entry["size"] == path.stat().st_size == bag.size
            crc = base64.b64encode(google_crc32c.Checksum(path.read_bytes()).digest()).decode()
            assert entry["crc32c"] == crc
            assert entry["format"] == run.plan.fmt
            assert entry["frames"] == bag.counts[IMAGE_TOPICS[run.plan.image]]
            assert {t["topic"]: t["count"] for t in entry["topics"]} == bag.counts
            assert entry["parsers"] == {"detections": "direct", "tracking": "direct"}
            assert entry["start_ns"] <= entry["end_ns"]
        assert meta["start_ns"] == meta["bags"][0]["start_ns"] and meta["end_ns"] == meta["bags"][-1]["end_ns"]
        assert meta["source_bags"] == [run.bag_name(bag) for bag in run.bags]
        assert all(t["duration_s"] > 1 for t in meta["topics"])
        topics = {t["topic"]: (t["type"], t["count"]) for t in meta["topics"]}
        assert topics == {topic: (run.bags[0].msgtypes[topic], run.count(topic)) for topic in run.bags[0].msgtypes}
        chosen = meta["chosen"]
        assert chosen["frames"]["topic"] == IMAGE_TOPICS[run.plan.image] and chosen["frames"]["source"] == "auto"
        assert chosen["detections"]["topic"] == DETECTIONS_TOPIC
        assert chosen["tracking"]["topic"] == TRACKS_TOPIC
        assert chosen["detections"]["alternatives"] == chosen["tracking"]["alternatives"] == []
        assert meta["counts"]["frames"] == summary.frames
        assert meta["counts"]["tracks"] == summary.tracks
        assert meta["outputs"]["frames.csv"]["rows"] == summary.frames
        assert meta["outputs"]["detections.json"]["messages"] == summary.detection_messages
        assert meta["warnings"] == list(summary.warnings)


def test_in_flight_files_are_skipped_and_reported(demo: Demo, extracted: dict) -> None:
    in_flight = {key.rsplit("/", 1)[-1] for key in demo.summary.in_flight}
    reported = set()
    for out in extracted:
        meta = json.loads((out / "metadata.json").read_text())
        reported |= {Path(name).name for name in meta["input"]["skipped"]}
        assert not any(name.endswith((".active", ".tmp")) for bag in meta["bags"] for name in [bag["path"]])
    assert reported == in_flight


def test_small_chunks_give_identical_outputs(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = demo.run(splits=2)
    extract_run(run.path, tmp_path / "big")
    # Flushing every 7 rows exercises the streaming path the way a multi-GB bag does.
    monkeypatch.setattr(writer_module, "CHUNK_ROWS", 7)
    monkeypatch.setattr("src.extraction.extract.CHUNK_ROWS", 7)
    extract_run(run.path, tmp_path / "small")
    for name in OUTPUT_FILES[:5]:
        assert (tmp_path / "big" / name).read_bytes() == (tmp_path / "small" / name).read_bytes(), name


def test_reopening_bags_gives_identical_outputs(demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = demo.run(splits=2)
    extract_run(run.path, tmp_path / "kept")
    # Runs with many bags close them after the survey and open them again to extract.
    monkeypatch.setattr(reader_module, "KEEP_OPEN", 0)
    extract_run(run.path, tmp_path / "reopened")
    for name in OUTPUT_FILES[:5]:
        assert (tmp_path / "kept" / name).read_bytes() == (tmp_path / "reopened" / name).read_bytes(), name


def test_progress_reports(demo: Demo, tmp_path: Path) -> None:
    run = demo.run(splits=2)
    events: list[dict[str, int]] = []
    summary = extract_run(run.path, tmp_path / "out", progress=events.append)
    assert events[0] == {"bags_done": 0, "bags_total": len(run.bags), "frames": 0}
    assert events[-1] == {"bags_done": len(run.bags), "bags_total": len(run.bags), "frames": summary.frames}
    done = [e["bags_done"] for e in events]
    assert done == sorted(done)


def test_bags_from_several_recordings_in_one_folder(demo: Demo, tmp_path: Path) -> None:
    # A ROS1 .bag and a ROS2 MCAP split side by side, nested one level down.
    ros1, ros2 = demo.run(fmt="ros1", image="raw"), demo.run(fmt="ros2", image="raw")
    run_dir = tmp_path / "run" / "drives"
    run_dir.mkdir(parents=True)
    (run_dir / "a.bag").write_bytes((demo.raw / ros1.bags[0].key).read_bytes())
    folder = demo.raw / ros2.bags[0].key.rsplit("/", 1)[0]
    (run_dir / "b").mkdir()
    for path in folder.iterdir():
        (run_dir / "b" / path.name).write_bytes(path.read_bytes())
    summary = extract_run(tmp_path / "run", tmp_path / "out")
    expected = ros1.bags[0].counts[IMAGE_TOPICS["raw"]] + ros2.count(IMAGE_TOPICS["raw"])
    assert summary.frames == expected
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    names = [bag["path"] for bag in meta["bags"]]
    assert sorted(names) == sorted(["drives/a.bag", *(f"drives/b/{Path(bag.key).name}" for bag in ros2.bags)])
    by_bag: dict[str, list[int]] = defaultdict(list)
    for row in _read(tmp_path / "out", "frames.csv").itertuples(index=False):
        by_bag[row.bag].append(row.stamp_ns)
    assert all(stamps == sorted(stamps) for stamps in by_bag.values())
