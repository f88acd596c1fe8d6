"""The CLI: progress lines, one clear error line for bad input, topic overrides."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer

from src.demo.bags import DETECTIONS_TOPIC, IMAGE_TOPICS, TRACKS_TOPIC
from src.rosmsgs import ros1_vision_typestore
from tests.extraction.conftest import Demo, run_cli


def _assert_one_error_line(result, *needles: str) -> str:
    """Assert a failed run printed exactly one 'error: …' line on stderr and nothing looking extracted."""
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _assert_nothing_written(out: Path) -> None:
    """Assert neither OUT_DIR nor a temp sibling of it exists."""
    assert not out.exists()
    if out.parent.exists():
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


@pytest.fixture
def bad_inputs(tmp_path: Path, demo: Demo, real_bags: Path | None) -> dict[str, Path]:
    """Build one run folder per kind of bad input, from the real bags when present, else from demo bags."""
    runs = {}

    def run_with(name: str, data: bytes) -> Path:
        folder = tmp_path / "in" / name.replace(".", "_")
        folder.mkdir(parents=True)
        (folder / name).write_bytes(data)
        return folder

    ros1 = (real_bags / "tiny.bag") if real_bags else demo.raw / demo.run(fmt="ros1").bags[0].key
    mcap = demo.raw / demo.run(fmt="ros2").bags[0].key
    runs["corrupt"] = run_with("x.bag", os.urandom(64 * 1024))
    data = ros1.read_bytes()
    runs["truncated"] = run_with("half.bag", data[: len(data) // 2])
    data = mcap.read_bytes()
    runs["truncated_mcap"] = run_with("half.mcap", data[: len(data) // 2])
    if real_bags:
        runs["ros1_profile"] = run_with("tiny.mcap", (real_bags / "tiny.mcap").read_bytes())
    else:  # the same bytes with the profile string of the header record changed: what rosbags refuses
        runs["ros1_profile"] = run_with("tiny.mcap", data[:21] + b"ros1" + data[25:])
    runs["empty_file"] = run_with("empty.bag", b"")
    runs["missing"] = tmp_path / "in" / "no-such-run"
    runs["empty_dir"] = tmp_path / "in" / "nothing"
    runs["empty_dir"].mkdir()
    (runs["empty_dir"] / "drive.bag.active").write_bytes(b"in flight")
    return runs


@pytest.mark.parametrize(
    ("kind", "needles"),
    [
        ("corrupt", ("x.bag:", "not a ROS1 bag")),
        ("truncated", ("half.bag:", "truncated or damaged")),
        ("truncated_mcap", ("half.mcap:", "truncated or damaged")),
        ("ros1_profile", ("tiny.mcap: MCAP profile is ros1, only ros2 is supported",)),
        ("empty_file", ("empty.bag: file is empty",)),
        ("empty_dir", ("no bags found", "1 in-flight file(s) skipped")),
        ("missing", ("no-such-run: no such file or folder",)),
    ],
)
def test_bad_input_gives_one_error_line(bad_inputs: dict[str, Path], tmp_path: Path, kind: str, needles) -> None:
    out = tmp_path / "out" / "run"
    result = run_cli(bad_inputs[kind], out)
    _assert_one_error_line(result, *needles)
    assert result.returncode == 1
    _assert_nothing_written(out)


def test_no_image_topic(demo: Demo, tmp_path: Path) -> None:
    # A run holding only the detections of a demo bag.
    run = demo.run(fmt="ros1")
    only = tmp_path / "only_perception"
    only.mkdir()
    with AnyReader([demo.raw / run.bags[0].key]) as reader, Writer(only / "perception.bag") as writer:
        conns = [c for c in reader.connections if c.topic == DETECTIONS_TOPIC]
        out_conn = writer.add_connection(DETECTIONS_TOPIC, conns[0].msgtype, typestore=ros1_vision_typestore())
        for _conn, log_ns, raw in reader.messages(connections=conns):
            writer.write(out_conn, log_ns, raw)
    out = tmp_path / "out"
    result = run_cli(only, out)
    _assert_one_error_line(result, "no image topic", DETECTIONS_TOPIC)
    _assert_nothing_written(out)


def test_success_prints_progress_json_lines_and_a_summary(demo: Demo, tmp_path: Path) -> None:
    run = demo.run(splits=2)
    out = tmp_path / "out"
    result = run_cli(run.path, out)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert events[0] == {"bags_done": 0, "bags_total": len(run.bags), "frames": 0}
    summary = json.loads(result.stdout)
    assert events[-1] == {"bags_done": len(run.bags), "bags_total": len(run.bags), "frames": summary["frames"]}
    assert summary["frames"] == run.count(IMAGE_TOPICS[run.plan.image])
    assert (out / "metadata.json").is_file()
    quiet = run_cli(run.path, out, "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_topic_override_flags(demo: Demo, tmp_path: Path) -> None:
    run = demo.run(fmt="ros2")
    out = tmp_path / "out"
    # Swap the roles: the tracks topic read as detections, and tracking left out.
    result = run_cli(run.path, out, "--quiet", "--detections-topic", TRACKS_TOPIC, "--tracking-topic", "none")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames_topic"] == IMAGE_TOPICS[run.plan.image]
    assert summary["detections_topic"] == TRACKS_TOPIC and summary["tracking_topic"] is None
    assert summary["detection_messages"] == run.count(TRACKS_TOPIC)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["chosen"]["detections"]["source"] == "override"
    assert meta["chosen"]["tracking"]["source"] == "disabled"
    assert len((out / "tracking.csv").read_text().splitlines()) == 1
    # A refused override is one line, and the earlier output stays as it was.
    result = run_cli(run.path, out, "--tracking-topic", "/no/such/topic")
    _assert_one_error_line(result, "tracking topic /no/such/topic is not in the run", DETECTIONS_TOPIC)
    assert json.loads((out / "metadata.json").read_text())["chosen"]["tracking"]["source"] == "disabled"
