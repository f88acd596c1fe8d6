"""For a partial selection: which child of the next level is behind, overall and per day."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from src.components.figures import BAD, GOOD, MUTED
from src.components.filter_bar import LEVEL_LABELS
from src.models import CoverageReport

TITLE = "Coverage by next level"
GAP_SCALE = [[0.0, GOOD], [0.5, "#f5d9a8"], [1.0, BAD]]


def build(report: CoverageReport) -> go.Figure | None:
    """Bars of gap % per child and a child × day heatmap; None when all five levels are chosen."""
    breakdown = report.breakdown
    if breakdown is None:
        return None
    label = LEVEL_LABELS.get(breakdown.level, breakdown.level)
    with_days = bool(breakdown.days)
    figure = make_subplots(
        rows=1,
        cols=2 if with_days else 1,
        column_widths=[0.35, 0.65] if with_days else None,
        shared_yaxes=True,
        horizontal_spacing=0.02,
    )
    hover = [
        f"{child}<br>{runs} runs · {bags} bags · {samples} samples<br>gap {gap:.1f} % · {under} under-labelled"
        for child, runs, bags, samples, gap, under in zip(
            breakdown.children,
            breakdown.runs,
            breakdown.raw_bags,
            breakdown.ml_samples,
            breakdown.gap_percentages,
            breakdown.under_labeled_counts,
            strict=True,
        )
    ]
    figure.add_bar(
        y=breakdown.children,
        x=breakdown.gap_percentages,
        orientation="h",
        name="gap %",
        marker={"color": breakdown.gap_percentages, "colorscale": GAP_SCALE, "cmin": 0, "cmax": 100},
        hovertext=hover,
        hoverinfo="text",
        customdata=breakdown.children,
        row=1,
        col=1,
    )
    if with_days:
        figure.add_heatmap(
            x=breakdown.days,
            y=breakdown.children,
            z=breakdown.day_gaps,
            colorscale=GAP_SCALE,
            zmin=0,
            zmax=100,
            colorbar={"title": "gap %"},
            hoverongaps=False,
            customdata=[breakdown.children] * len(breakdown.days),
            hovertemplate="%{y} · %{x}<br>gap %{z:.1f} %<extra></extra>",
            row=1,
            col=2,
        )
    figure.update_layout(
        template="bagboard",
        title={"text": f"Gap by {label} (click a bar to drill in)", "x": 0, "font": {"size": 15}},
        showlegend=False,
        height=max(260, 60 + 28 * len(breakdown.children)),
    )
    figure.update_xaxes(title_text="gap %", range=[0, 105], row=1, col=1)
    figure.update_yaxes(autorange="reversed", title_text=label, row=1, col=1)
    figure.add_vline(x=report.threshold_pct, line={"color": MUTED, "dash": "dot", "width": 1}, row=1, col=1)
    return figure
