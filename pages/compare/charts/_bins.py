"""What the comparison's histograms share: one set of bins for both sides, so the bars line up."""

from __future__ import annotations

from typing import Any


def shared_bins(*samples: list[float], count: int) -> dict[str, Any] | None:
    """Return Plotly xbins covering every sample in `count` equal bins (None when there is nothing to bin)."""
    values = [v for sample in samples for v in sample if v is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    size = (high - low) / count if high > low else 1.0
    return {"start": low, "end": high + size, "size": size}
