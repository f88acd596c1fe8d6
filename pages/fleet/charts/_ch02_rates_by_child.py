"""Mean FPS, frame drops per minute, tracks per minute and mean track lifetime per child."""

from __future__ import annotations

from typing import Any

from pages.fleet.charts._helpers import labels, stacked_axes, values
from src.components.figures import PALETTE, base_layout
from src.models.fleet import FleetReport

TITLE = "Rates per child"
PANELS = (
    ("mean_fps", "mean FPS", "Hz"),
    ("drops_per_min", "frame drops / min", "/min"),
    ("tracks_per_min", "tracks / min", "/min"),
    ("mean_track_lifetime_s", "mean track lifetime", "s"),
)


def build(report: FleetReport) -> dict[str, Any] | None:
    """One bar panel per figure, stacked and sharing the children's axis."""
    frame = report.by_child
    if frame.empty:
        return None
    x = labels(frame)
    traces = []
    layout = base_layout(TITLE, showlegend=False, height=620, **stacked_axes(len(PANELS)))
    for index, (column, name, unit) in enumerate(PANELS):
        axis = "" if index == 0 else str(index + 1)
        traces.append(
            {
                "type": "bar",
                "x": x,
                "y": values(frame, column),
                "name": name,
                "customdata": x,
                "xaxis": "x",
                "yaxis": f"y{axis}",
                "marker": {"color": PALETTE[index % len(PALETTE)]},
                "hovertemplate": "%{x}<br>" + name + " %{y:.2f} " + unit + "<extra></extra>",
            }
        )
        layout[f"yaxis{axis}"]["title"] = {"text": name, "font": {"size": 11}}
    layout["xaxis"] = {"type": "category", "anchor": f"y{len(PANELS)}"}
    return {"data": traces, "layout": layout}
