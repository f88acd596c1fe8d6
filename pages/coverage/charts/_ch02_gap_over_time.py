"""The labelling gap over time, with the under-labelled threshold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from src.components.figures import BAD, PALETTE, base_layout, break_long_gaps
from src.models import CoverageReport

TITLE = "Gap over time"
# Points more than this far apart are not joined: a line across missing days would invent data.
MAX_JOIN = timedelta(days=1)
BUCKET_JOIN = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=31),
}


def build(report: CoverageReport) -> dict[str, Any]:
    """Line of gap % per timestamp, broken across missing days, and the threshold as a line."""
    data = report.temporal
    points = [
        (t, gap)
        for t, gap, bags in zip(data.parsed_times, data.gap_percentages, data.raw_bags, strict=True)
        if t is not None and bags > 0
    ]
    x, y = break_long_gaps([p[0] for p in points], [p[1] for p in points], BUCKET_JOIN.get(data.bucket, MAX_JOIN))
    trace = {
        "type": "scatter",
        "x": [None if t is None else t.isoformat() for t in x],
        "y": y,
        "mode": "lines+markers",
        "name": "Gap %",
        "line": {"color": PALETTE[0], "width": 2},
        "marker": {"size": 6},
        "connectgaps": False,
        "hovertemplate": "%{x}<br>gap %{y:.1f} %<extra></extra>",
    }
    threshold = report.threshold_pct
    layout = base_layout(
        TITLE if data.bucket == "timestamp" else f"{TITLE} (per {data.bucket})",
        xaxis={"type": "date"},
        yaxis={"title": {"text": "gap %"}, "range": [0, 105]},
        showlegend=False,
        shapes=[
            {
                "type": "line",
                "xref": "x domain",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": threshold,
                "y1": threshold,
                "line": {"color": BAD, "dash": "dash", "width": 1},
            }
        ],
        annotations=[
            {
                "text": f"threshold {threshold:g} %",
                "xref": "x domain",
                "x": 0,
                "xanchor": "left",
                "yref": "y",
                "y": threshold,
                "yanchor": "bottom",
                "showarrow": False,
            }
        ],
    )
    return {"data": [trace], "layout": layout}
