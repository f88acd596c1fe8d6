"""A minimal PNG encoder (8-bit gray or RGB), deterministic for the same zlib."""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {1: 0, 3: 2}  # channels -> PNG colour type (gray, truecolour)


def encode_png(width: int, height: int, pixels: bytes, channels: int = 1) -> bytes:
    """Encode row-major 8-bit pixels (gray or RGB) as a PNG file."""
    if channels not in COLOR_TYPES:
        raise ValueError("channels must be 1 (gray) or 3 (RGB)")
    stride = width * channels
    if width <= 0 or height <= 0 or len(pixels) != stride * height:
        raise ValueError(f"expected {stride * height} bytes for {width}x{height}x{channels}")
    # Filter type 0 (none) on every row keeps the encoder trivial; zlib does the rest.
    raw = b"".join(b"\x00" + pixels[row * stride : (row + 1) * stride] for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[channels], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def decode_png_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) from a PNG's IHDR chunk."""
    if not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _chunk(kind: bytes, payload: bytes) -> bytes:
    """Frame one PNG chunk: length, type, payload, CRC over type and payload."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
