"""The frame image route: GET /frames/image?run=COORD&frame=N&size=full|thumb&v=VERSION, viewer and up.

Behind the same auth wall as every page. The run is parsed with RunCoordinate and the frame as a bounded
integer: nothing from the client reaches a path. An image carrying the current extraction version (v) never
changes, so the browser may keep it (private, immutable); without it, the ETag lets the browser revalidate.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, has_request_context, request

from src.auth import Role, check_role, current_actor
from src.core.logging import get_logger
from src.models import RunCoordinate
from src.services.frames import SIZES, FrameInputError

bp = Blueprint("frames", __name__)
log = get_logger("bagboard.frames")

ROUTE = "/frames/image"
MAX_FRAME = 2**40  # far above any run's frame count; bigger numbers are not frames
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"


def frame_url(coord: RunCoordinate, frame_index: int, version: str, size: str = "full") -> str:
    """Return the image URL of one frame (under the app's script root inside a request)."""
    root = request.script_root if has_request_context() else ""
    query = urlencode({"run": coord.to_path_str(), "frame": int(frame_index), "size": size, "v": version})
    return f"{root}{ROUTE}?{query}"


def _plain(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@bp.get(ROUTE)
def frame_image() -> Response:
    """Serve one frame (or its thumbnail) of an extracted run; a placeholder image when it cannot be decoded."""
    check_role(current_actor(), Role.VIEWER, "view frames")
    try:
        coord = RunCoordinate.from_path(request.args.get("run", ""))
    except ValueError as exc:
        return _plain(400, f"bad run: {exc}")
    raw_frame = request.args.get("frame", "")
    if not (raw_frame.isascii() and raw_frame.isdigit()) or int(raw_frame) > MAX_FRAME:  # "²".isdigit() is True
        return _plain(400, "frame must be a whole number of at most 2^40")
    size = request.args.get("size", "full")
    if size not in SIZES:
        return _plain(400, f"size must be one of {', '.join(SIZES)}")
    frame_index = int(raw_frame)
    services = current_app.extensions["bagboard.services"]
    try:
        image, version = services.frames.image(coord, frame_index, size)
    except FrameInputError as exc:
        return _plain(404, str(exc))
    etag = f"{version}-{frame_index}-{size}"
    response = Response(image.data, mimetype=image.mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = IMMUTABLE if request.args.get("v") == version else REVALIDATE
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response.make_conditional(request)
