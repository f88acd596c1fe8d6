"""Write labelled ML samples (tiny PNG plus JSON sidecar) and the local export's tracking file."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from src.demo.bags import IMAGE_TOPICS
from src.demo.files import partial_path, write_atomic
from src.demo.layout import BagFile, RunPlan, derive_seed
from src.demo.png import encode_png
from src.demo.render import pixel_extent, render
from src.demo.sim import Frame

SAMPLE_SIZE = (64, 48)  # the labelling tool's downscaled copy of a camera frame
LABEL_SCHEMA_VERSION = 1
ANNOTATORS = ("labeler-01", "labeler-02", "labeler-03", "labeler-04", "labeler-05")
TRACKING_FILE = ".export_tracking.json"


def sample_frames(frames: list[Frame], bag: BagFile, count: int) -> list[Frame]:
    """Pick count frames spread evenly over the frames recorded into bag."""
    inside = [f for f in frames if bag.start_ns <= f.image_log_ns < bag.end_ns]
    count = min(count, len(inside))
    if count <= 0:
        return []
    # step >= 1, so the picked indices are distinct and in range.
    step = len(inside) / count
    return [inside[int((i + 0.5) * step)] for i in range(count)]


def write_run_samples(run: RunPlan, frames: list[Frame], root: Path) -> tuple[int, int]:
    """Write the run's samples under root/{coord}; return (samples, bytes)."""
    rng = random.Random(derive_seed(run.seed, "labels"))  # noqa: S311 - demo data needs replay, not secrecy
    run_dir = root / run.coord.to_path_str()
    samples = written = 0
    for bag, count in zip(run.bag_files(), run.samples_per_bag, strict=True):
        for frame in sample_frames(frames, bag, count):
            stem = f"{bag.stem}_{frame.seq:06d}"
            folder = run_dir / bag.stem if run.sample_layout == "per_bag" else run_dir
            png = _sample_png(frame)
            label = _label(run, bag, frame, f"{stem}.png", rng.choice(ANNOTATORS))
            written += write_atomic(folder / f"{stem}.png", png)
            written += write_atomic(folder / f"{stem}.json", label)
            samples += 1
    return samples, written


def write_tracking(data_root: Path, export_id: str, entry: dict) -> Path:
    """Add or replace one export in data_root/ml/.export_tracking.json, atomically."""
    path = data_root / "ml" / TRACKING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tracking: dict = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}  # a corrupt file must not block the demo; ours replaces it
        tracking = loaded if isinstance(loaded, dict) else {}
    tracking[export_id] = entry
    tmp = partial_path(path)
    tmp.write_text(json.dumps(tracking, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def _sample_png(frame: Frame) -> bytes:
    """Render the frame's objects at sample resolution as an RGB PNG."""
    width, height = SAMPLE_SIZE
    return encode_png(width, height, render(frame.truth, width, height, channels=3, phase=frame.seq), 3)


def _label(run: RunPlan, bag: BagFile, frame: Frame, image: str, annotator: str) -> bytes:
    """Return the JSON sidecar: boxes as [x, y, width, height] in sample pixels."""
    width, height = SAMPLE_SIZE
    boxes = []
    for box in frame.truth:
        x1, x2, y1, y2 = pixel_extent(box, width, height)
        boxes.append({"class": box.cls, "bbox": [x1, y1, x2 - x1, y2 - y1], "track_id": str(box.track_id)})
    label = {
        "schema_version": LABEL_SCHEMA_VERSION,
        "image": image,
        "width": width,
        "height": height,
        "bbox_format": "xywh",
        "source": {
            "bag": bag.key.rsplit("/", 1)[-1],
            "topic": IMAGE_TOPICS[run.image],
            "stamp_ns": frame.stamp_ns,
            "frame_seq": frame.seq,
        },
        "annotator": annotator,
        "boxes": boxes,
    }
    return (json.dumps(label, indent=2, sort_keys=True) + "\n").encode()
