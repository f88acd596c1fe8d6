"""Raw bags against ML samples per timestamp (or time bucket), with the gap on a second axis."""

from __future__ import annotations

from typing import Any

from src.components.figures import BAD, MUTED, PALETTE, bar_width_ms, base_layout
from src.models import CoverageReport

TITLE = "Raw bags vs ML samples"
HOVER = (
    "%{customdata[0]}<br>%{customdata[1]} bags · %{customdata[2]} samples<br>gap %{customdata[3]:.1f} %<extra></extra>"
)


def build(report: CoverageReport) -> dict[str, Any]:
    """Bars of ML samples and of the expected count (bags × expected), gap % as markers."""
    data = report.temporal
    points = [
        (time, name, bags, samples, gap)
        for time, name, bags, samples, gap in zip(
            data.parsed_times, data.timestamps, data.raw_bags, data.ml_samples, data.gap_percentages, strict=True
        )
        if time is not None
    ]
    times = [p[0] for p in points]
    x = [time.isoformat() for time in times]
    # customdata[0] is the timestamp a click opens; in a bucketed series it is a period, not a run.
    custom = [[name, bags, samples, gap] for _, name, bags, samples, gap in points]
    width = bar_width_ms(times)
    common = {"x": x, "customdata": custom, "hovertemplate": HOVER}
    traces = [
        {
            "type": "bar",
            "y": [p[2] * data.expected_samples_per_bag for p in points],
            "name": "Expected samples (bags × target)",
            "marker": {"color": MUTED},
            "opacity": 0.45,
            "width": width,
            **common,
        },
        {
            "type": "bar",
            "y": [p[3] for p in points],
            "name": "ML samples",
            "marker": {"color": PALETTE[1]},
            "width": width,
            **common,
        },
        {
            "type": "scatter",
            "y": [p[4] for p in points],
            "name": "Gap %",
            "mode": "markers",
            "marker": {"color": BAD, "size": 7, "symbol": "diamond"},
            "yaxis": "y2",
            **common,
        },
    ]
    title = TITLE if data.bucket == "timestamp" else f"{TITLE} per {data.bucket}"
    layout = base_layout(
        title,
        barmode="overlay",
        bargap=0.15,
        xaxis={"type": "date", "title": {"text": None}},
        yaxis={"title": {"text": "samples"}},
        yaxis2={
            "title": {"text": "gap %"},
            "overlaying": "y",
            "side": "right",
            "range": [0, 105],
            "dtick": 25,
            "showgrid": False,
        },
        hovermode="closest",
        meta={"bucket": data.bucket},
    )
    return {"data": traces, "layout": layout}
