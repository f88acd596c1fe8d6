"""Every supported sensor_msgs/Image encoding decodes to the pixels it holds; CompressedImage passes through."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from src.imaging.decode import (
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    UndecodableFrame,
    decode,
    decode_compressed,
    decode_image,
    read_header,
    turbo_lut,
)
from src.imaging.encode import MAX_BYTES, encode_frame, placeholder, thumbnail
from src.rosmsgs import ros1_vision_typestore, vision_typestore

# A 3×2 RGB picture with distinct channels everywhere.
RGB = np.array(
    [[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[10, 20, 30], [200, 100, 50], [7, 8, 9]]],
    dtype=np.uint8,
)
H, W = RGB.shape[:2]


def image(encoding: str, pixels: np.ndarray, *, step: int | None = None, bigendian: bool = False, pad: int = 0):
    """Return decode_image's result for pixels laid out row by row (optionally padded to step)."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8) if pixels.dtype != np.uint8 else pixels
    rows = rows.reshape(pixels.shape[0], -1)
    row_bytes = rows.shape[1]
    step = step or row_bytes + pad
    data = np.zeros(step * pixels.shape[0], dtype=np.uint8)
    for r in range(pixels.shape[0]):
        data[r * step : r * step + row_bytes] = rows[r]
    return decode_image(pixels.shape[1], pixels.shape[0], encoding, bigendian, step, data)


@pytest.mark.parametrize("pad", [0, 5])
def test_rgb8_and_bgr8_honour_the_step(pad: int) -> None:
    assert (image("rgb8", RGB, pad=pad).pixels == RGB).all()
    assert (image("bgr8", RGB[..., ::-1].copy(), pad=pad).pixels == RGB).all()


def test_rgba8_and_bgra8_drop_alpha() -> None:
    alpha = np.full((H, W, 1), 77, dtype=np.uint8)
    assert (image("rgba8", np.concatenate([RGB, alpha], axis=2)).pixels == RGB).all()
    assert (image("bgra8", np.concatenate([RGB[..., ::-1], alpha], axis=2)).pixels == RGB).all()


def test_mono8_is_gray() -> None:
    gray = np.array([[0, 128, 255], [1, 2, 3]], dtype=np.uint8)
    decoded = image("mono8", gray[..., None].copy().reshape(H, W))
    assert decoded.pixels.shape == (H, W) and (decoded.pixels == gray).all()


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_is_scaled_to_its_range_in_either_byte_order(bigendian: bool) -> None:
    values = np.array([[1000, 2000, 3000], [1000, 3000, 2000]], dtype=np.dtype(">u2" if bigendian else "<u2"))
    decoded = image("mono16", values, bigendian=bigendian)
    assert decoded.pixels.tolist() == [[0, 127, 255], [0, 255, 127]]


def test_16uc1_depth_is_colour_mapped_with_zero_as_invalid() -> None:
    depth = np.array([[0, 500, 1000], [1500, 2000, 0]], dtype="<u2")
    pixels = image("16UC1", depth).pixels
    assert pixels.shape == (H, W, 3)
    assert (pixels[0, 0] == 0).all() and (pixels[1, 2] == 0).all()  # no depth: black
    lut = turbo_lut()
    assert (pixels[1, 1] == lut[0]).all()  # farthest valid (the 99th percentile clamps): the far end of the map
    assert len({tuple(p) for p in pixels[[0, 0, 1, 1], [1, 2, 0, 1]]}) == 4  # every depth its own colour


def test_32fc1_depth_ignores_nan_and_infinity() -> None:
    depth = np.array([[np.nan, 1.0, 2.0], [np.inf, 3.0, 4.0]], dtype="<f4")
    pixels = image("32FC1", depth).pixels
    assert (pixels[0, 0] == 0).all() and (pixels[1, 0] == 0).all()
    assert not (pixels[0, 1] == pixels[1, 2]).all()


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_patterns_demosaic_a_flat_colour_exactly(pattern: str, bits: int) -> None:
    # A flat colour sampled through the pattern must come back as that colour everywhere (bilinear is exact).
    colour = {"r": 200, "g": 120, "b": 40}
    mosaic = np.zeros((6, 8), dtype=np.uint16 if bits == 16 else np.uint8)
    for cell, name in enumerate(pattern):
        mosaic[cell // 2 :: 2, cell % 2 :: 2] = colour[name] * (257 if bits == 16 else 1)
    decoded = image(f"bayer_{pattern}{bits}", mosaic.astype("<u2") if bits == 16 else mosaic)
    assert decoded.pixels.shape == (6, 8, 3)
    assert (decoded.pixels == [200, 120, 40]).all()


def test_rgb16_and_yuv422() -> None:
    assert (image("rgb16", (RGB.astype("<u2") * 257)).pixels == RGB).all()
    # UYVY: U Y0 V Y1 → two gray pixels when U = V = 128.
    uyvy = np.array([[128, 50, 128, 200]], dtype=np.uint8)
    assert decode_image(2, 1, "yuv422", False, 4, uyvy.ravel()).pixels.tolist() == [[[50, 50, 50], [200, 200, 200]]]
    yuyv = np.array([[50, 128, 200, 128]], dtype=np.uint8)
    assert decode_image(2, 1, "yuv422_yuy2", False, 4, yuyv.ravel()).pixels.tolist() == [
        [[50, 50, 50], [200, 200, 200]]
    ]


@pytest.mark.parametrize(
    ("encoding", "width", "height", "step", "size", "reason"),
    [
        ("rgb8", 640, 480, 1920, 30, "image data holds 30 bytes; 640x480 rgb8 with step 1920 needs 921,600"),
        ("rgb8", 4, 4, 5, 100, "step 5 is shorter than a row"),
        ("hsv9", 2, 2, 2, 4, "image encoding 'hsv9' is not supported"),
        ("mono8", 0, 4, 0, 4, "image size 0x4 is not a picture"),
    ],
)
def test_images_that_cannot_be_shown_say_why(encoding, width, height, step, size, reason) -> None:
    with pytest.raises(UndecodableFrame, match=reason.replace("(", r"\(")):
        decode_image(width, height, encoding, False, step, np.zeros(size, dtype=np.uint8))


def _png(pixels: np.ndarray, **options: object) -> bytes:
    out = BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", **options)
    return out.getvalue()


def test_compressed_jpeg_and_png_pass_through_and_others_decode() -> None:
    png = _png(RGB)
    decoded = decode_compressed("png", png)
    assert decoded.passthrough == png and decoded.mimetype == "image/png" and (decoded.width, decoded.height) == (3, 2)
    assert encode_frame(decoded).data == png  # small enough: the browser gets the bag's own bytes
    out = BytesIO()
    Image.fromarray(RGB).save(out, format="BMP")
    bmp = decode_compressed("bmp", out.getvalue())
    assert bmp.passthrough is None and (bmp.pixels == RGB).all()


def test_compressed_depth_is_colour_mapped() -> None:
    depth = np.array([[0, 1000], [2000, 3000]], dtype=np.uint16)
    decoded = decode_compressed("16UC1; compressedDepth png", b"\x00" * 12 + _png(depth))
    assert decoded.pixels.shape == (2, 2, 3) and (decoded.pixels[0, 0] == 0).all()


def test_a_ten_byte_jpeg_stub_is_undecodable_with_a_reason() -> None:
    with pytest.raises(UndecodableFrame, match="starts like image/jpeg but is cut short or damaged"):
        decode_compressed("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF")


@pytest.mark.parametrize("ros1", [False, True])
def test_serialized_messages_decode_in_both_serializations(ros1: bool) -> None:
    store = ros1_vision_typestore() if ros1 else vision_typestore()
    t = store.types
    stamp = t["builtin_interfaces/msg/Time"](sec=1, nanosec=2)
    header = (
        t["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id="cam")
        if ros1
        else t["std_msgs/msg/Header"](stamp=stamp, frame_id="cam")
    )
    serialize = store.serialize_ros1 if ros1 else store.serialize_cdr
    msg = t[IMAGE_TYPE](header, H, W, "rgb8", 0, W * 3, RGB.ravel())
    raw = bytes(serialize(msg, IMAGE_TYPE))
    assert (decode(raw, IMAGE_TYPE, ros1).pixels == RGB).all()
    assert read_header(raw, IMAGE_TYPE, ros1).encoding == "rgb8"
    compressed = t[COMPRESSED_TYPE](header, "png", np.frombuffer(_png(RGB), dtype=np.uint8))
    raw = bytes(serialize(compressed, COMPRESSED_TYPE))
    assert decode(raw, COMPRESSED_TYPE, ros1).mimetype == "image/png"
    assert (read_header(raw, COMPRESSED_TYPE, ros1).width, read_header(raw, COMPRESSED_TYPE, ros1).height) == (W, H)
    with pytest.raises(UndecodableFrame, match="cannot be read"):
        decode(raw[:20], IMAGE_TYPE, ros1)


def test_a_noisy_640x480_frame_stays_within_the_byte_budget() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    encoded = encode_frame(image("rgb8", noise))
    assert encoded.mimetype == "image/jpeg" and len(encoded.data) <= MAX_BYTES
    assert Image.open(BytesIO(encoded.data)).size == (640, 480)
    small = thumbnail(image("rgb8", noise))
    assert max(Image.open(BytesIO(small.data)).size) <= 192


def test_placeholder_is_an_image_of_the_requested_size() -> None:
    encoded = placeholder("CompressedImage of 10 bytes is not an image", (320, 240))
    assert encoded.mimetype == "image/png" and Image.open(BytesIO(encoded.data)).size == (320, 240)
