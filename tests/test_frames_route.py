"""GET /frames/image: behind the wall, the coordinate and frame validated, browser caching by extraction version."""

from __future__ import annotations

import shutil
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image

from src.extraction import extract_run
from src.models import RunCoordinate
from tests.extraction.conftest import REAL_BAGS

COORD = RunCoordinate("acme", "north", "field-01", "tw01", "lb1", "2024-06-07T11-56-07")


@pytest.fixture
def run(app, data_root: Path) -> RunCoordinate:
    """Put the real tiny.bag (mono8 DVS frames) in a run and extract it."""
    if not (REAL_BAGS / "tiny.bag").is_file():
        pytest.skip("real test bags not checked out")
    local = app.server.extensions["bagboard.services"].local_state
    raw = local.raw_path(COORD)
    raw.mkdir(parents=True)
    shutil.copyfile(REAL_BAGS / "tiny.bag", raw / "tiny.bag")
    extract_run(raw, local.processed_path(COORD))
    return COORD


def url(coord: RunCoordinate | str, frame: object = 0, **extra: str) -> str:
    run = coord.to_path_str() if isinstance(coord, RunCoordinate) else coord
    query = "&".join(f"{key}={value}" for key, value in {"run": run, "frame": frame, **extra}.items())
    return f"/frames/image?{query}"


def test_frames_need_a_session(client, run) -> None:
    response = client.get(url(run))
    assert response.status_code == 302 and "/login?next=" in response.headers["Location"]


def test_a_viewer_gets_the_frame_cached_by_extraction_version(client, auth, run, app) -> None:
    auth.login("viewer")
    version = app.server.extensions["bagboard.services"].frames.run_frames(run).version
    response = client.get(url(run, 2, v=version))
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    assert Image.open(BytesIO(response.data)).size == (346, 260)
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    etag = response.headers["ETag"]
    again = client.get(url(run, 2), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["Cache-Control"] == "private, no-cache"
    thumb = client.get(url(run, 2, size="thumb", v=version))
    assert thumb.status_code == 200 and max(Image.open(BytesIO(thumb.data)).size) <= 192


@pytest.mark.parametrize(
    ("run_path", "frame", "extra", "status"),
    [
        ("../../etc/passwd", 0, {}, 400),
        ("acme/north/field-01/tw01/lb1/..", 0, {}, 400),
        ("acme/north", 0, {}, 400),
        (COORD.to_path_str(), "-1", {}, 400),
        (COORD.to_path_str(), "1e3", {}, 400),
        (COORD.to_path_str(), "9" * 30, {}, 400),
        (COORD.to_path_str(), "²", {}, 400),  # a digit to str.isdigit(), not to int()
        (COORD.to_path_str(), 0, {"size": "../x"}, 400),
        (COORD.to_path_str(), 99, {}, 404),
        ("acme/north/field-01/tw01/lb1/other-run", 0, {}, 404),
    ],
)
def test_bad_requests_are_refused_without_a_500(client, auth, run, run_path, frame, extra, status) -> None:
    auth.login("viewer")
    response = client.get(url(run_path, frame, **extra))
    assert response.status_code == status
    assert response.mimetype == "text/plain" and b"Traceback" not in response.data
