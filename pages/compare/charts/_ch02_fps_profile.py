"""Frame rate over normalised time (0 = the run's first frame, 1 = its last), the two sides overlaid."""

from __future__ import annotations

from typing import Any

from src.components.figures import PALETTE, base_layout
from src.models.fleet import RunComparison

TITLE = "FPS over normalised time"


def build(comparison: RunComparison) -> dict[str, Any] | None:
    """One line per side: the mean instant FPS in each fiftieth of the run."""
    traces = []
    for side, colour in ((comparison.a, PALETTE[0]), (comparison.b, PALETTE[1])):
        if not side.fps_profile:
            continue
        bins = len(side.fps_profile)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": [(i + 0.5) / bins for i in range(bins)],
                "y": side.fps_profile,
                "name": side.label,
                "line": {"color": colour, "width": 2},
                "connectgaps": False,
                "hovertemplate": "%{x:.2f}<br>%{y:.1f} Hz<extra></extra>",
            }
        )
    if not traces:
        return None
    return {
        "data": traces,
        "layout": base_layout(
            TITLE, xaxis={"title": {"text": "share of the run"}, "range": [0, 1]}, yaxis={"title": {"text": "Hz"}}
        ),
    }
