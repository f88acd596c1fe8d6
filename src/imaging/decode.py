"""Turn a serialized sensor_msgs/Image or CompressedImage into pixels a browser can be sent (numpy only).

Image encodings: rgb8, bgr8, rgba8, bgra8, mono8 (and 8UC1/8UC3/8UC4), mono16 (scaled to the frame's range),
16UC1 and 32FC1 depth (a colour map, invalid pixels black), the Bayer patterns bayer_{rggb,bggr,gbrg,grbg}{8,16}
(bilinear demosaicing), rgb16/bgr16/rgba16/bgra16, yuv422 (UYVY) and yuv422_yuy2 (YUYV). Rows are `step` bytes
apart and multi-byte pixels honour `is_bigendian`. CompressedImage JPEG, PNG and WebP bytes go to the browser as
they are; compressedDepth (a 12-byte header and a 16-bit PNG) is colour-mapped like 16UC1.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from io import BytesIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from src.extraction.reader import default_typestore

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
MAX_PIXELS = 64_000_000  # 8K × 8K: a header claiming more is damaged, not a camera
BAYER = ("rggb", "bggr", "gbrg", "grbg")
# bytes of one pixel, channels, numpy dtype (before byte order) per encoding
LAYOUTS: dict[str, tuple[int, int, str]] = {
    "rgb8": (3, 3, "u1"),
    "bgr8": (3, 3, "u1"),
    "rgba8": (4, 4, "u1"),
    "bgra8": (4, 4, "u1"),
    "mono8": (1, 1, "u1"),
    "8uc1": (1, 1, "u1"),
    "8uc3": (3, 3, "u1"),
    "8uc4": (4, 4, "u1"),
    "mono16": (2, 1, "u2"),
    "16uc1": (2, 1, "u2"),
    "32fc1": (4, 1, "f4"),
    "rgb16": (6, 3, "u2"),
    "bgr16": (6, 3, "u2"),
    "rgba16": (8, 4, "u2"),
    "bgra16": (8, 4, "u2"),
    "yuv422": (2, 2, "u1"),
    "uyvy": (2, 2, "u1"),
    "yuv422_yuy2": (2, 2, "u1"),
    "yuyv": (2, 2, "u1"),
    **{f"bayer_{p}8": (1, 1, "u1") for p in BAYER},
    **{f"bayer_{p}16": (2, 1, "u2") for p in BAYER},
}
YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
BROWSER_FORMATS = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}


class UndecodableFrame(Exception):
    """A frame that cannot be shown; str(err) is the one-line reason for the placeholder."""


@dataclass(frozen=True)
class DecodedFrame:
    """A frame ready to encode: 8-bit pixels (H×W gray or H×W×3 RGB), or browser-ready bytes passed through."""

    width: int
    height: int
    encoding: str  # the message's encoding or CompressedImage format
    pixels: np.ndarray | None = None
    passthrough: bytes | None = None
    mimetype: str | None = None  # of passthrough


@dataclass(frozen=True)
class FrameHeader:
    """What the message says about its image, without decoding the pixels."""

    width: int
    height: int
    encoding: str


def deserialize(raw: bytes, msgtype: str, is_ros1: bool) -> object:
    """Deserialize an image message with the standard types (its definition never changed)."""
    store = default_typestore("ros1" if is_ros1 else "ros2")
    try:
        if is_ros1:
            return store.deserialize_ros1(raw, msgtype)
        return store.deserialize_cdr(raw, msgtype)
    except Exception as err:  # rosbags raises several kinds for damaged bytes; all mean the same here
        raise UndecodableFrame(f"the {msgtype.rsplit('/', 1)[-1]} message cannot be read ({_short(err)})") from err


def read_header(raw: bytes, msgtype: str, is_ros1: bool) -> FrameHeader:
    """Return the image's size and encoding (a CompressedImage's from its JPEG/PNG header)."""
    msg = deserialize(raw, msgtype, is_ros1)
    if msgtype == COMPRESSED_TYPE:
        data = _compressed_payload(msg)
        try:
            with Image.open(BytesIO(data)) as image:  # lazy: reads the header only
                width, height = image.size
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise UndecodableFrame(_not_an_image(msg, data)) from err
        return FrameHeader(width, height, str(msg.format))  # type: ignore[attr-defined]
    header = FrameHeader(int(msg.width), int(msg.height), str(msg.encoding))  # type: ignore[attr-defined]
    # The fields must add up, or the frame is a placeholder: say so now, not only in the image.
    check_layout(header.width, header.height, header.encoding, int(msg.step), len(msg.data))  # type: ignore[attr-defined]
    return header


def decode(raw: bytes, msgtype: str, is_ros1: bool) -> DecodedFrame:
    """Decode one serialized image message; raise UndecodableFrame with the reason when it cannot be shown."""
    if msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE):
        raise UndecodableFrame(f"{msgtype} is not an image type")
    msg = deserialize(raw, msgtype, is_ros1)
    if msgtype == COMPRESSED_TYPE:
        return decode_compressed(str(msg.format), _compressed_payload(msg))  # type: ignore[attr-defined]
    return decode_image(
        int(msg.width),  # type: ignore[attr-defined]
        int(msg.height),  # type: ignore[attr-defined]
        str(msg.encoding),  # type: ignore[attr-defined]
        bool(msg.is_bigendian),  # type: ignore[attr-defined]
        int(msg.step),  # type: ignore[attr-defined]
        np.asarray(msg.data, dtype=np.uint8),  # type: ignore[attr-defined]
    )


def decode_image(width: int, height: int, encoding: str, bigendian: bool, step: int, data: np.ndarray) -> DecodedFrame:
    """Decode a sensor_msgs/Image's fields into 8-bit gray or RGB pixels."""
    name = encoding.strip().lower()
    row_bytes, needed = check_layout(width, height, encoding, step, data.size)
    _pixel_bytes, channels, kind = LAYOUTS[name]
    data = np.ascontiguousarray(data[:needed])
    rows = np.ascontiguousarray(np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1)))
    if name in YUV422:
        return DecodedFrame(width, height, encoding, pixels=_yuv422(rows, uyvy=name in ("yuv422", "uyvy")))
    dtype = np.dtype(kind).newbyteorder(">" if bigendian else "<")
    values = rows.view(dtype).reshape(height, width, channels)
    return DecodedFrame(width, height, encoding, pixels=_to_rgb(name, values))


def check_layout(width: int, height: int, encoding: str, step: int, size: int) -> tuple[int, int]:
    """Return (bytes per row, bytes needed) of an Image's fields; raise UndecodableFrame when they do not add up."""
    name = encoding.strip().lower()
    if name not in LAYOUTS:
        raise UndecodableFrame(f"image encoding {encoding!r} is not supported")
    pixel_bytes = LAYOUTS[name][0]
    if width <= 0 or height <= 0 or width * height > MAX_PIXELS:
        raise UndecodableFrame(f"image size {width}x{height} is not a picture")
    if name in YUV422 and width % 2:
        raise UndecodableFrame(f"{encoding} needs an even width, got {width}")
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise UndecodableFrame(f"step {step} is shorter than a row of {width} {encoding} pixels ({row_bytes} bytes)")
    needed = step * (height - 1) + row_bytes
    if size < needed:
        raise UndecodableFrame(
            f"image data holds {size:,} bytes; {width}x{height} {encoding} with step {step} needs {needed:,}"
        )
    return row_bytes, needed


def _to_rgb(name: str, values: np.ndarray) -> np.ndarray:
    """Return 8-bit gray (H×W) or RGB (H×W×3) pixels for one encoding's values."""
    if name in ("rgb8", "8uc3"):
        return values if name == "rgb8" else values[..., ::-1]  # 8UC3 is OpenCV's BGR
    if name == "bgr8":
        return values[..., ::-1]
    if name in ("rgba8", "8uc4"):
        return values[..., :3] if name == "rgba8" else values[..., 2::-1]
    if name == "bgra8":
        return values[..., 2::-1]
    if name in ("mono8", "8uc1"):
        return values[..., 0]
    if name == "mono16":
        return scale_to_8bit(values[..., 0].astype(np.float32))
    if name == "16uc1":
        depth = values[..., 0].astype(np.float32)
        return colour_map(depth, depth > 0)
    if name == "32fc1":
        depth = values[..., 0].astype(np.float32)
        return colour_map(depth, np.isfinite(depth) & (depth > 0))
    if name in ("rgb16", "bgr16", "rgba16", "bgra16"):
        rgb = (values[..., :3] >> 8).astype(np.uint8)
        return rgb[..., ::-1] if name.startswith("bgr") else rgb
    pattern, bits = name[6:10], name[10:]
    mosaic = values[..., 0]
    if bits == "16":
        mosaic = (mosaic >> 8).astype(np.uint8)
    return demosaic(mosaic, pattern)


def scale_to_8bit(values: np.ndarray) -> np.ndarray:
    """Stretch the frame's finite value range to 0–255 (a flat frame is mid-gray)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.full(values.shape, 128, dtype=np.uint8)
    scaled = (np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def colour_map(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Colour depth with the turbo map over the valid pixels' 1st–99th percentile (near: red, far: blue)."""
    out = np.zeros((*depth.shape, 3), dtype=np.uint8)
    if not valid.any():
        return out
    near, far = np.percentile(depth[valid], [1, 99])
    span = max(float(far - near), 1e-6)
    index = np.clip((far - depth) / span * 255.0, 0, 255).astype(np.uint8)
    out[valid] = turbo_lut()[index[valid]]
    return out


@cache
def turbo_lut() -> np.ndarray:
    """Return Google's turbo colour map as 256 RGB rows (its published polynomial fit)."""
    x = np.linspace(0.0, 1.0, 256)
    r = 0.13572138 + x * (4.61539260 + x * (-42.66032258 + x * (132.13108234 + x * (-152.94239396 + x * 59.28637943))))
    g = 0.09140261 + x * (2.19418839 + x * (4.84296658 + x * (-14.18503333 + x * (4.27729857 + x * 2.82956604))))
    b = 0.10667330 + x * (12.64194608 + x * (-60.58204836 + x * (110.36276771 + x * (-89.90310912 + x * 27.34824973))))
    return (np.clip(np.stack([r, g, b], axis=1), 0, 1) * 255).astype(np.uint8)


def demosaic(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaicing of an 8-bit Bayer mosaic whose top-left 2×2 cell is pattern (e.g. 'rggb')."""
    height, width = mosaic.shape
    values = mosaic.astype(np.float32)
    rgb = np.empty((height, width, 3), dtype=np.float32)
    for channel, colour in enumerate("rgb"):
        mask = np.zeros((height, width), dtype=np.float32)
        for cell, name in enumerate(pattern):
            if name == colour:
                mask[cell // 2 :: 2, cell % 2 :: 2] = 1.0
        # Normalised convolution with the bilinear kernel: each missing sample is its neighbours' weighted mean.
        kernel = _CROSS if colour == "g" else _BOX
        known = _convolve(values * mask, kernel)
        weight = _convolve(mask, kernel)
        rgb[..., channel] = np.where(mask > 0, values, known / np.maximum(weight, 1e-6))
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


_CROSS = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float32)
_BOX = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float32)


def _convolve(plane: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Return the 3×3 convolution of plane (edges padded with zeros)."""
    padded = np.pad(plane, 1)
    height, width = plane.shape
    out = np.zeros_like(plane)
    for dy in range(3):
        for dx in range(3):
            if kernel[dy, dx]:
                out += kernel[dy, dx] * padded[dy : dy + height, dx : dx + width]
    return out


def _yuv422(rows: np.ndarray, *, uyvy: bool) -> np.ndarray:
    """Convert packed 4:2:2 rows (UYVY or YUYV, two pixels per four bytes) to RGB (BT.601)."""
    quads = rows.reshape(rows.shape[0], -1, 4).astype(np.float32)
    if uyvy:
        u, y0, v, y1 = (quads[..., i] for i in range(4))
    else:
        y0, u, y1, v = (quads[..., i] for i in range(4))
    y = np.stack([y0, y1], axis=-1).reshape(rows.shape[0], -1)
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    rgb = np.stack([y + 1.402 * v, y - 0.344136 * u - 0.714136 * v, y + 1.772 * u], axis=-1)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def decode_compressed(fmt: str, data: bytes) -> DecodedFrame:
    """Pass JPEG/PNG/WebP through; decode compressedDepth; raise UndecodableFrame for anything else."""
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        return _compressed_depth(fmt, data)
    mimetype = browser_mimetype(data)
    try:
        with Image.open(BytesIO(data)) as image:
            image.load()  # a header alone (the 10-byte stubs of some test bags) fails here
            width, height = image.size
            if mimetype is None:  # a format Pillow reads but browsers may not (e.g. BMP, TIFF): decode it
                return DecodedFrame(width, height, fmt, pixels=np.asarray(image.convert("RGB")))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UndecodableFrame(_not_an_image_text(fmt, data)) from err
    return DecodedFrame(width, height, fmt, passthrough=bytes(data), mimetype=mimetype)


def browser_mimetype(data: bytes) -> str | None:
    """Return the MIME type of bytes every browser shows (JPEG, PNG, WebP), else None."""
    for magic, mimetype in BROWSER_FORMATS.items():
        if data.startswith(magic):
            return mimetype
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _compressed_depth(fmt: str, data: bytes) -> DecodedFrame:
    """Decode image_transport's compressedDepth: a 12-byte config header, then a 16-bit PNG of depth."""
    try:
        with Image.open(BytesIO(data[12:])) as image:
            depth = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UndecodableFrame(f"compressedDepth frame of {len(data):,} bytes holds no PNG") from err
    if depth.ndim != 2:
        raise UndecodableFrame("compressedDepth frame is not a one-channel depth image")
    height, width = depth.shape
    return DecodedFrame(width, height, fmt, pixels=colour_map(depth, depth > 0))


def _compressed_payload(msg: object) -> bytes:
    """Return a CompressedImage's data as bytes."""
    return np.asarray(msg.data, dtype=np.uint8).tobytes()  # type: ignore[attr-defined]


def _not_an_image(msg: object, data: bytes) -> str:
    return _not_an_image_text(str(msg.format), data)  # type: ignore[attr-defined]


def _not_an_image_text(fmt: str, data: bytes) -> str:
    """Return the reason a CompressedImage payload cannot be shown."""
    kind = browser_mimetype(data)
    claimed = f" {fmt!r}" if fmt else ""
    if kind:
        return f"CompressedImage{claimed} of {len(data):,} bytes starts like {kind} but is cut short or damaged"
    return f"CompressedImage{claimed} of {len(data):,} bytes is not an image this dashboard can read"


def _short(err: Exception) -> str:
    """Return a short one-line description of err."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:160]
