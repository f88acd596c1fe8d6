"""Draw tiny synthetic camera images: a sky-to-road gradient with a box per object."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import numpy as np

from src.demo.sim import Box

CLASS_GRAY = {"car": 200, "pedestrian": 245, "cyclist": 170, "truck": 135}
CLASS_RGB = {
    "car": (52, 152, 219),
    "pedestrian": (231, 76, 60),
    "cyclist": (46, 204, 113),
    "truck": (243, 156, 18),
}


def render(boxes: Iterable[Box], width: int, height: int, channels: int = 1, phase: int = 0) -> bytes:
    """Return row-major 8-bit pixels (gray or RGB) for one frame."""
    image = np.roll(_background(width, height, channels), phase % width, axis=1)
    for box in boxes:
        x1, x2, y1, y2 = pixel_extent(box, width, height)
        image[y1:y2, x1:x2] = CLASS_GRAY[box.cls] if channels == 1 else CLASS_RGB[box.cls]
    return image.tobytes()


def pixel_extent(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Return the box as whole pixels (x1, x2, y1, y2), at least one pixel wide and high."""
    x1 = min(width - 1, max(0, round((box.cx - box.w / 2) * width)))
    y1 = min(height - 1, max(0, round((box.cy - box.h / 2) * height)))
    x2 = max(x1 + 1, min(width, round((box.cx + box.w / 2) * width)))
    y2 = max(y1 + 1, min(height, round((box.cy + box.h / 2) * height)))
    return x1, x2, y1, y2


@cache
def _background(width: int, height: int, channels: int) -> np.ndarray:
    """Return a sky-to-road gradient with dashed lane marks, the same for every frame."""
    rows = np.linspace(0.0, 1.0, height)[:, None]
    horizon = (rows < 0.4).astype(float)
    gray = horizon * (170 - 60 * rows) + (1 - horizon) * (70 + 30 * rows)
    image = np.repeat(gray, width, axis=1)
    lane = int(height * 0.8)
    image[lane, ::4] = 230  # dashed marking; rolling it per frame suggests motion
    image = image.astype(np.uint8)
    if channels == 1:
        return image
    tint = np.where(rows < 0.4, 1.0, 0.0)
    rgb = np.stack([image * (1 - 0.3 * tint), image * (1 - 0.1 * tint), image], axis=-1)
    return np.clip(rgb, 0, 255).astype(np.uint8)
