"""FrameService: the boxes land on the objects the demo drew, real bags decode or say why not, thumbnails cache."""

from __future__ import annotations

import os
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from src.demo.render import CLASS_GRAY, pixel_extent, render
from src.demo.sim import Box
from src.extraction import extract_run
from src.models import FrameBox, RunCoordinate
from src.services.frames import THUMBNAIL_DIR, FrameInputError
from tests.frames.conftest import Extracted


def pixels(data: bytes) -> np.ndarray:
    """Decode image bytes to gray pixels."""
    return np.asarray(Image.open(BytesIO(data)).convert("L"), dtype=np.float64)


def extent(box: FrameBox, width: int, height: int) -> tuple[int, int, int, int]:
    """Return a box's whole-pixel extent, as the demo renderer rounds it."""
    relative = Box("car", box.cx / width, box.cy / height, box.w / width, box.h / height, 1.0, 0)
    return pixel_extent(relative, width, height)


def alone(box: FrameBox, others: tuple[FrameBox, ...]) -> bool:
    """Tell whether no other box overlaps box (an overlap mixes two objects' grays)."""
    return all(
        o is box or abs(o.cx - box.cx) * 2 >= o.w + box.w or abs(o.cy - box.cy) * 2 >= o.h + box.h for o in others
    )


def test_track_boxes_land_on_the_objects_the_demo_drew(extracted: Extracted) -> None:
    service = extracted.service()
    checked = 0
    for coord in extracted.demo_runs:
        run = service.run_frames(coord)
        for position in range(0, run.count, max(1, run.count // 12)):
            view = service.frame_view(coord, position=position)
            assert view is not None and view.problem is None
            image = pixels(service.image(coord, view.frame_index)[0].data)
            assert image.shape == (view.height, view.width)
            background = np.frombuffer(render((), view.width, view.height), dtype=np.uint8).reshape(image.shape)
            for box in view.tracks:
                if not alone(box, view.tracks) or box.class_id not in CLASS_GRAY:
                    continue
                x1, x2, y1, y2 = extent(box, view.width, view.height)
                if x2 - x1 < 2 or y2 - y1 < 2:
                    continue  # an object leaving the frame: a pixel or two, all edge
                # The object is drawn in its class's gray around its track box's centre; the empty road is not.
                row, column = min(int(box.cy), view.height - 1), min(int(box.cx), view.width - 1)
                inside = image[row, column]
                assert abs(inside - CLASS_GRAY[box.class_id]) < 25, (coord, view.frame_index, box)
                assert abs(inside - background[row, column]) > 25
                checked += 1
    assert checked > 30


def test_detections_and_tracks_are_those_of_the_frame_stamp(extracted: Extracted) -> None:
    service = extracted.service()
    coord = next(c for c, run in extracted.demo_runs.items() if run.plan.fmt == "ros2")
    run = service.run_frames(coord)
    view = service.frame_view(coord, t_s=run.duration_s / 2)
    assert abs(view.t_s - run.duration_s / 2) < 0.5
    assert view.detection_latency_ms is None or 0 < view.detection_latency_ms < 200
    assert all(box.track_id for box in view.tracks) and not any(box.track_id for box in view.detections)
    assert service.frame_view(coord, position=10**9).position == run.count - 1  # clamped, not an error
    assert service.frame_view(coord, position=-5).position == 0


@pytest.mark.parametrize(("name", "size"), [("tiny.bag", (346, 260)), ("tiny_svo.bag", (752, 480))])
def test_real_mono8_cameras_decode(extracted: Extracted, real: dict[str, RunCoordinate], name: str, size) -> None:
    service = extracted.service()
    view = service.frame_view(real[name], position=1)
    assert view.problem is None and (view.width, view.height) == size and view.encoding == "mono8"
    image, _version = service.image(real[name], view.frame_index)
    assert image.mimetype == "image/jpeg" and Image.open(BytesIO(image.data)).size == size
    assert pixels(image.data).std() > 5  # a real picture, not a flat placeholder


@pytest.mark.parametrize("name", ["ros2_mcap", "ros2_sqlite3"])
def test_ros2_test_images_are_placeholders_with_the_reason(
    extracted: Extracted, real: dict[str, RunCoordinate], name: str
) -> None:
    service = extracted.service()
    view = service.frame_view(real[name])
    assert view.problem == "image data holds 30 bytes; 640x480 rgb8 with step 1920 needs 921,600"
    image, _ = service.image(real[name], view.frame_index)
    assert image.mimetype == "image/png" and Image.open(BytesIO(image.data)).size == (640, 480)


def test_the_compressed_image_stub_is_a_placeholder(extracted: Extracted, real: dict[str, RunCoordinate]) -> None:
    coord = real["ros2_mcap"]
    processed = extracted.local.processed_path(coord)
    extract_run(extracted.local.raw_path(coord), processed, frames_topic="/test/sensor_msgs/compressed_image")
    try:
        service = extracted.service()
        view = service.frame_view(coord)
        assert "CompressedImage 'jpeg' of 10 bytes starts like image/jpeg but is cut short" in view.problem
        assert service.image(coord, view.frame_index, "thumb")[0].mimetype == "image/png"
    finally:
        extract_run(extracted.local.raw_path(coord), processed)


def test_thumbnails_are_cached_per_extraction(extracted: Extracted, tmp_path) -> None:
    coord, run = next(iter(extracted.demo_runs.items()))
    service = extracted.service()
    processed = extracted.local.processed_path(coord)
    frame = service.run_frames(coord).frame_index[2]
    first, version = service.image(coord, int(frame), "thumb")
    cached = processed / THUMBNAIL_DIR / version / f"{frame}.jpg"
    assert cached.read_bytes() == first.data
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]  # no temp file left behind
    cached.write_bytes(b"from the cache")
    assert service.image(coord, int(frame), "thumb")[0].data == b"from the cache"
    # A new extraction replaces the run folder: new version, the old thumbnails gone with it.
    os.utime(processed / "frames.csv")
    extract_run(run.path, processed)
    again, new_version = service.image(coord, int(frame), "thumb")
    assert new_version != version and again.data == first.data and not cached.exists()


def test_unknown_frames_and_runs_are_lookup_errors(extracted: Extracted) -> None:
    service = extracted.service()
    coord = next(iter(extracted.demo_runs))
    with pytest.raises(FrameInputError, match="no frame 999999"):
        service.image(coord, 999_999)
    with pytest.raises(FrameInputError, match="not extracted"):
        service.frame_view(RunCoordinate("no", "such", "run", "t", "l", "x"))
    with pytest.raises(ValueError, match="size"):
        service.image(coord, 0, "huge")


def test_a_changed_bag_is_reported_not_shown(extracted: Extracted) -> None:
    coord = next(c for c, r in extracted.demo_runs.items() if r.plan.fmt == "ros1")
    service = extracted.service()
    frames = service.run_frames(coord)
    frames.bag_sizes = {name: size + 1 for name, size in frames.bag_sizes.items()}
    view = service.frame_view(coord, position=0)
    assert "changed since it was extracted" in view.problem
    assert view.tracks == service.frame_view(coord, position=0).tracks  # the boxes still show
