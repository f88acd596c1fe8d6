"""Detection latency p50 / p95 / p99 per child of the next level."""

from __future__ import annotations

from typing import Any

from pages.fleet.charts._helpers import labels, values
from src.components.figures import PALETTE, base_layout
from src.models.fleet import FleetReport

TITLE = "Detection latency per child (median run's p50 / p95 / p99)"


def build(report: FleetReport) -> dict[str, Any] | None:
    """Grouped bars of the three percentiles, one group per child; clicking a group drills into it."""
    frame = report.by_child
    if frame.empty:
        return None
    x = labels(frame)
    traces = [
        {
            "type": "bar",
            "x": x,
            "y": values(frame, column),
            "name": name,
            "customdata": x,
            "marker": {"color": colour},
            "hovertemplate": "%{x}<br>" + name + " %{y:.1f} ms<extra></extra>",
        }
        for column, name, colour in (
            ("latency_p50_ms", "p50", PALETTE[1]),
            ("latency_p95_ms", "p95", PALETTE[0]),
            ("latency_p99_ms", "p99", PALETTE[3]),
        )
    ]
    return {
        "data": traces,
        "layout": base_layout(
            TITLE,
            barmode="group",
            xaxis={"title": {"text": report.level}, "type": "category"},
            yaxis={"title": {"text": "ms"}},
        ),
    }
