"""Track lifetime distributions of the two sides, overlaid."""

from __future__ import annotations

from typing import Any

from pages.compare.charts._bins import shared_bins
from src.components.figures import PALETTE, base_layout
from src.models.fleet import RunComparison

TITLE = "Track lifetimes"


def build(comparison: RunComparison) -> dict[str, Any] | None:
    """Two normalised histograms of how long tracks lived."""
    sides = [
        (side, colour)
        for side, colour in ((comparison.a, PALETTE[0]), (comparison.b, PALETTE[1]))
        if side.track_lifetimes_s
    ]
    if not sides:
        return None
    bins = shared_bins(*(side.track_lifetimes_s for side, _ in sides), count=40)
    traces = [
        {
            "type": "histogram",
            "x": side.track_lifetimes_s,
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
            TITLE, barmode="overlay", xaxis={"title": {"text": "s"}}, yaxis={"title": {"text": "% of tracks"}}
        ),
    }
