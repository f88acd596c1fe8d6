"""Encode decoded frames for the browser with Pillow: JPEG within a byte budget, PNG for tiny frames, thumbnails
and placeholder images that say why a frame cannot be shown."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from src.imaging.decode import DecodedFrame

MAX_BYTES = 150_000  # per frame sent to the browser (a 640×480 photo at quality 80 is ~50 kB)
JPEG_QUALITIES = (82, 70, 55, 40, 25)  # tried in turn until the frame fits MAX_BYTES
LOSSLESS_PIXELS = 128 * 128  # frames this small go as PNG: lossless and still only a few kB
THUMB_SIZE = (192, 144)
PLACEHOLDER_SIZE = (640, 480)


@dataclass(frozen=True)
class EncodedImage:
    """Bytes for an <img>: the image and its MIME type (and the JPEG quality that fitted the budget)."""

    data: bytes
    mimetype: str
    quality: int | None = None


def encode_frame(frame: DecodedFrame, max_bytes: int = MAX_BYTES, first_quality: int | None = None) -> EncodedImage:
    """Return the frame as the browser gets it: passed through when it is a small JPEG/PNG/WebP, else encoded.

    first_quality skips the JPEG qualities above it: a camera's frames are alike, so the quality that fitted the
    last frame of a run almost always fits the next, and one encode is enough.
    """
    if frame.passthrough is not None and frame.mimetype and len(frame.passthrough) <= max_bytes:
        return EncodedImage(frame.passthrough, frame.mimetype)
    return encode_image(_image(frame), max_bytes, first_quality)


def encode_image(image: Image.Image, max_bytes: int = MAX_BYTES, first_quality: int | None = None) -> EncodedImage:
    """Encode a Pillow image: PNG when tiny, else the best JPEG quality within max_bytes."""
    if image.width * image.height <= LOSSLESS_PIXELS:
        out = BytesIO()
        image.save(out, format="PNG", optimize=False)
        if out.tell() <= max_bytes:
            return EncodedImage(out.getvalue(), "image/png")
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    data = b""
    qualities = [q for q in JPEG_QUALITIES if first_quality is None or q <= first_quality] or [JPEG_QUALITIES[-1]]
    for quality in qualities:
        out = BytesIO()
        image.save(out, format="JPEG", quality=quality)
        data = out.getvalue()
        if len(data) <= max_bytes:
            return EncodedImage(data, "image/jpeg", quality)
    # Pure noise at a huge size: halve it until it fits.
    return encode_image(image.resize((max(1, image.width // 2), max(1, image.height // 2))), max_bytes)


def thumbnail(frame: DecodedFrame, size: tuple[int, int] = THUMB_SIZE) -> EncodedImage:
    """Return a small JPEG of the frame, aspect ratio kept."""
    image = _image(frame)
    image.thumbnail(size, Image.Resampling.BILINEAR)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    out = BytesIO()
    image.save(out, format="JPEG", quality=75)
    return EncodedImage(out.getvalue(), "image/jpeg")


def placeholder(reason: str, size: tuple[int, int] = PLACEHOLDER_SIZE) -> EncodedImage:
    """Return a gray PNG saying the frame cannot be shown and why."""
    width, height = max(size[0], 160), max(size[1], 90)
    image = Image.new("RGB", (width, height), (226, 229, 234))
    draw = ImageDraw.Draw(image)
    scale = max(10, min(width, height) // 22)
    title_font = ImageFont.load_default(size=scale + 4)
    font = ImageFont.load_default(size=scale)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(150, 156, 166), width=2)
    lines = textwrap.wrap(reason, width=max(20, int(width / (scale * 0.55))))[:6]
    y = height // 2 - (len(lines) + 1) * (scale + 6) // 2
    draw.text((width // 2, y), "Frame cannot be shown", fill=(60, 64, 72), font=title_font, anchor="mt")
    for line in lines:
        y += scale + 8
        draw.text((width // 2, y), line, fill=(90, 96, 106), font=font, anchor="mt")
    out = BytesIO()
    image.save(out, format="PNG")
    return EncodedImage(out.getvalue(), "image/png")


def _image(frame: DecodedFrame) -> Image.Image:
    """Return the frame as a Pillow image."""
    if frame.pixels is not None:
        return Image.fromarray(np.ascontiguousarray(frame.pixels))
    assert frame.passthrough is not None
    image = Image.open(BytesIO(frame.passthrough))
    image.load()
    return image
