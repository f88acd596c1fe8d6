"""Small helpers the fleet charts share: plain lists from a roll-up's columns."""

from __future__ import annotations

from typing import Any

import pandas as pd


def values(frame: pd.DataFrame, column: str) -> list[float | None]:
    """Return a column as floats with None for missing values (JSON has no NaN)."""
    return [None if pd.isna(v) else float(v) for v in frame[column].tolist()]


def labels(frame: pd.DataFrame) -> list[str]:
    """Return the index as text (a child's name, or a period's date)."""
    index = frame.index
    if isinstance(index, pd.DatetimeIndex) or str(index.dtype).startswith("datetime"):
        return [pd.Timestamp(v).strftime("%Y-%m-%d") for v in index]
    return [str(v) for v in index]


def stacked_axes(count: int, gap: float = 0.06) -> dict[str, Any]:
    """Return layout entries for `count` y axes stacked top to bottom, sharing the x axis."""
    height = (1 - gap * (count - 1)) / count
    out: dict[str, Any] = {}
    for index in range(count):
        top = 1 - index * (height + gap)
        name = "yaxis" if index == 0 else f"yaxis{index + 1}"
        out[name] = {"domain": [max(0.0, top - height), top]}
    return out
