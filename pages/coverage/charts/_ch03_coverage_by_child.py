"""For a partial selection: which child of the next level is behind, overall and per day."""

from __future__ import annotations

from typing import Any

from src.components.figures import BAD, GOOD, MUTED, base_layout
from src.components.filter_bar import LEVEL_LABELS
from src.models import CoverageReport

TITLE = "Coverage by next level"
GAP_SCALE = [[0.0, GOOD], [0.5, "#f5d9a8"], [1.0, BAD]]
BARS_WIDTH = 0.35  # share of the width for the bars; the heatmap takes the rest
SPACING = 0.02


def build(report: CoverageReport) -> dict[str, Any] | None:
    """Bars of gap % per child and a child × day heatmap on one shared y axis; None when all five levels are chosen."""
    breakdown = report.breakdown
    if breakdown is None:
        return None
    label = LEVEL_LABELS.get(breakdown.level, breakdown.level)
    with_days = bool(breakdown.days)
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
    traces: list[dict[str, Any]] = [
        {
            "type": "bar",
            "y": breakdown.children,
            "x": breakdown.gap_percentages,
            "orientation": "h",
            "name": "gap %",
            "marker": {"color": breakdown.gap_percentages, "colorscale": GAP_SCALE, "cmin": 0, "cmax": 100},
            "hovertext": hover,
            "hoverinfo": "text",
            "customdata": breakdown.children,
        }
    ]
    if with_days:
        traces.append(
            {
                "type": "heatmap",
                "x": breakdown.days,
                "y": breakdown.children,
                "z": breakdown.day_gaps,
                "xaxis": "x2",
                "colorscale": GAP_SCALE,
                "zmin": 0,
                "zmax": 100,
                "colorbar": {"title": {"text": "gap %"}},
                "hoverongaps": False,
                # One row per child, so a click on any cell drills into that child.
                "customdata": [[child] * len(breakdown.days) for child in breakdown.children],
                "hovertemplate": "%{y} · %{x}<br>gap %{z:.1f} %<extra></extra>",
            }
        )
    bars_end = BARS_WIDTH - SPACING / 2 if with_days else 1.0
    layout = base_layout(
        f"Gap by {label} (click a bar to drill in)",
        showlegend=False,
        height=max(260, 60 + 28 * len(breakdown.children)),
        xaxis={"domain": [0, bars_end], "anchor": "y", "title": {"text": "gap %"}, "range": [0, 105]},
        yaxis={"anchor": "x", "autorange": "reversed", "title": {"text": label}, "type": "category"},
        shapes=[
            {
                "type": "line",
                "xref": "x",
                "x0": report.threshold_pct,
                "x1": report.threshold_pct,
                "yref": "y domain",
                "y0": 0,
                "y1": 1,
                "line": {"color": MUTED, "dash": "dot", "width": 1},
            }
        ],
    )
    if with_days:
        layout["xaxis2"] = {"domain": [BARS_WIDTH + SPACING / 2, 1], "anchor": "y"}
    return {"data": traces, "layout": layout}
