"""The labelling gap over time, with the under-labelled threshold."""

from __future__ import annotations

from datetime import timedelta

import plotly.graph_objects as go

from src.components.figures import BAD, PALETTE, base_figure, break_long_gaps
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


def build(report: CoverageReport) -> go.Figure:
    """Line of gap % per timestamp, broken across missing days, and the threshold as a line."""
    data = report.temporal
    points = [
        (t, gap, name)
        for t, gap, name, bags in zip(
            data.parsed_times, data.gap_percentages, data.timestamps, data.raw_bags, strict=True
        )
        if t is not None and bags > 0
    ]
    times = [p[0] for p in points]
    x, y = break_long_gaps(times, [p[1] for p in points], BUCKET_JOIN.get(data.bucket, MAX_JOIN))
    figure = base_figure(TITLE if data.bucket == "timestamp" else f"{TITLE} (per {data.bucket})")
    figure.add_scatter(
        x=x,
        y=y,
        mode="lines+markers",
        name="Gap %",
        line={"color": PALETTE[0], "width": 2},
        marker={"size": 6},
        connectgaps=False,
        hovertemplate="%{x}<br>gap %{y:.1f} %<extra></extra>",
    )
    figure.add_hline(
        y=report.threshold_pct,
        line={"color": BAD, "dash": "dash", "width": 1},
        annotation_text=f"threshold {report.threshold_pct:g} %",
        annotation_position="top left",
    )
    figure.update_layout(xaxis={"type": "date"}, yaxis={"title": "gap %", "range": [0, 105]}, showlegend=False)
    return figure
