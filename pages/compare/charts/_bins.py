"""What the comparison's histograms share: one set of bins for both sides, so the bars line up."""

from __future__ import annotations

from typing import Any

from src.components.figures import PALETTE, base_layout
from src.models.fleet import RunComparison


def shared_bins(*samples: list[float], count: int) -> dict[str, Any] | None:
    """Return Plotly xbins covering every sample in `count` equal bins (None when there is nothing to bin)."""
    values = [v for sample in samples for v in sample if v is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    size = (high - low) / count if high > low else 1.0
    return {"start": low, "end": high + size, "size": size}


def overlaid_histograms(
    comparison: RunComparison, samples: str, *, bins: int, title: str, unit: str, share_of: str
) -> dict[str, Any] | None:
    """Return both sides' `samples` attribute as percent-normalised histograms on shared bins (None when empty)."""
    sides = [
        (side, colour)
        for side, colour in ((comparison.a, PALETTE[0]), (comparison.b, PALETTE[1]))
        if getattr(side, samples)
    ]
    if not sides:
        return None
    xbins = shared_bins(*(getattr(side, samples) for side, _ in sides), count=bins)
    traces = [
        {
            "type": "histogram",
            "x": getattr(side, samples),
            "name": side.label,
            "histnorm": "percent",
            "opacity": 0.6,
            "xbins": xbins,
            "autobinx": False,
            "marker": {"color": colour},
        }
        for side, colour in sides
    ]
    axes = {"xaxis": {"title": {"text": unit}}, "yaxis": {"title": {"text": f"% of {share_of}"}}}
    return {"data": traces, "layout": base_layout(title, barmode="overlay", **axes)}
