"""Detection latency distributions of the two sides, overlaid."""

from __future__ import annotations

from typing import Any

from pages.compare.charts._bins import shared_bins
from src.components.figures import PALETTE, base_layout
from src.models.fleet import RunComparison

TITLE = "Detection latency distribution"


def build(comparison: RunComparison) -> dict[str, Any] | None:
    """Two normalised histograms on one axis (each side's share of its detection messages)."""
    sides = [
        (side, colour) for side, colour in ((comparison.a, PALETTE[0]), (comparison.b, PALETTE[1])) if side.latency_ms
    ]
    if not sides:
        return None
    bins = shared_bins(*(side.latency_ms for side, _ in sides), count=60)
    traces = [
        {
            "type": "histogram",
            "x": side.latency_ms,
            "name": side.label,
            "histnorm": "percent",
            "opacity": 0.6,
            "xbins": bins,
            "autobinx": False,
            "marker": {"color": colour},
        }
        for side, colour in sides
    ]
    return {
        "data": traces,
        "layout": base_layout(
            TITLE, barmode="overlay", xaxis={"title": {"text": "ms"}}, yaxis={"title": {"text": "% of messages"}}
        ),
    }
