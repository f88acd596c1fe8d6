"""The fleet's figures per day or week: latency percentiles, FPS, drops and tracks."""

from __future__ import annotations

from typing import Any

from pages.fleet.charts._helpers import labels, stacked_axes, values
from src.components.figures import PALETTE, base_layout
from src.models.fleet import FleetReport

TITLE = "Over time"
PANELS = (
    (("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")),
    (("mean_fps", "mean FPS"),),
    (("drops_per_min", "drops / min"), ("tracks_per_min", "tracks / min")),
    (("mean_track_lifetime_s", "track lifetime s"),),
)
AXIS_TITLES = ("latency ms", "FPS", "per minute", "lifetime s")


def build(report: FleetReport) -> dict[str, Any] | None:
    """Lines per period start, one panel per kind of figure."""
    frame = report.over_time
    if frame.empty:
        return None
    x = labels(frame)
    traces = []
    layout = base_layout(f"{TITLE} (per {report.period})", height=620, **stacked_axes(len(PANELS)))
    colour = 0
    for index, panel in enumerate(PANELS):
        axis = "" if index == 0 else str(index + 1)
        for column, name in panel:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "x": x,
                    "y": values(frame, column),
                    "name": name,
                    "xaxis": "x",
                    "yaxis": f"y{axis}",
                    "line": {"color": PALETTE[colour % len(PALETTE)]},
                    "hovertemplate": "%{x}<br>" + name + " %{y:.2f}<extra></extra>",
                }
            )
            colour += 1
        layout[f"yaxis{axis}"]["title"] = {"text": AXIS_TITLES[index], "font": {"size": 11}}
    layout["xaxis"] = {"type": "date", "anchor": f"y{len(PANELS)}"}
    return {"data": traces, "layout": layout}
