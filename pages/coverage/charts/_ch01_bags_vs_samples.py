"""Raw bags against ML samples per timestamp (or time bucket), with the gap on a second axis."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from src.components.figures import BAD, MUTED, PALETTE, bar_width_ms, base_figure
from src.models import CoverageReport

TITLE = "Raw bags vs ML samples"
HOVER = (
    "%{customdata[0]}<br>%{customdata[1]} bags · %{customdata[2]} samples<br>gap %{customdata[3]:.1f} %<extra></extra>"
)


def build(report: CoverageReport) -> go.Figure:
    """Bars of ML samples and of the expected count (bags × expected), gap % as markers."""
    data = report.temporal
    placed = np.array([i for i, t in enumerate(data.parsed_times) if t is not None], dtype=int)
    x = [data.parsed_times[i] for i in placed]
    bags, samples = np.asarray(data.raw_bags)[placed], np.asarray(data.ml_samples)[placed]
    gaps = np.asarray(data.gap_percentages)[placed]
    # customdata[0] is the timestamp a click opens; in a bucketed series it is a period, not a run.
    # One object array validates in a single step, where a list of lists is checked cell by cell.
    custom = np.column_stack([np.asarray(data.timestamps, dtype=object)[placed], bags, samples, gaps])
    title = TITLE if data.bucket == "timestamp" else f"{TITLE} per {data.bucket}"
    figure = base_figure(title)
    figure.add_bar(
        x=x,
        y=[data.raw_bags[i] * data.expected_samples_per_bag for i in placed],
        name="Expected samples (bags × target)",
        marker_color=MUTED,
        opacity=0.45,
        customdata=custom,
        hovertemplate=HOVER,
    )
    figure.add_bar(
        x=x,
        y=[data.ml_samples[i] for i in placed],
        name="ML samples",
        marker_color=PALETTE[1],
        customdata=custom,
        hovertemplate=HOVER,
    )
    figure.add_scatter(
        x=x,
        y=[data.gap_percentages[i] for i in placed],
        name="Gap %",
        mode="markers",
        marker={"color": BAD, "size": 7, "symbol": "diamond"},
        yaxis="y2",
        customdata=custom,
        hovertemplate=HOVER,
    )
    figure.update_traces(width=bar_width_ms(x), selector={"type": "bar"})
    figure.update_layout(
        barmode="overlay",
        bargap=0.15,
        xaxis={"type": "date", "title": None},
        yaxis={"title": "samples"},
        yaxis2={
            "title": "gap %",
            "overlaying": "y",
            "side": "right",
            "range": [0, 105],
            "dtick": 25,
            "showgrid": False,
        },
        hovermode="closest",
        meta={"bucket": data.bucket},
    )
    return figure
