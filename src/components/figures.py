"""Plotly defaults shared by every chart: the warm light template and small figure helpers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

PALETTE = ["#b45309", "#0f766e", "#6d28d9", "#be123c", "#1d4ed8", "#4d7c0f", "#a16207", "#475569"]
GOOD, WARN, BAD, MUTED = "#15803d", "#b45309", "#b91c1c", "#8a8175"

pio.templates["bagboard"] = go.layout.Template(
    layout=go.Layout(
        colorway=PALETTE,
        font={"family": "Inter, Segoe UI, system-ui, sans-serif", "color": "#2b2723", "size": 12},
        paper_bgcolor="#ffffff",
        plot_bgcolor="#ffffff",
        margin={"l": 56, "r": 56, "t": 56, "b": 44},
        xaxis={"gridcolor": "#efe8dc", "linecolor": "#d9cfbf", "zeroline": False},
        yaxis={"gridcolor": "#efe8dc", "linecolor": "#d9cfbf", "zeroline": False},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
        hoverlabel={"bgcolor": "#fffaf2"},
    )
)


# The template as plain data, for charts on hot paths that build figure dicts: a dict reaches the browser as is,
# where a go.Figure is validated property by property when built and deep-copied when serialised.
TEMPLATE = pio.templates["bagboard"].to_plotly_json()


def base_layout(title: str, **layout: Any) -> dict[str, Any]:
    """Return a figure layout dict in the house style."""
    return {"template": TEMPLATE, "title": {"text": title, "x": 0, "font": {"size": 15}}, **layout}


def base_figure(title: str) -> go.Figure:
    """Return an empty figure in the house style."""
    return go.Figure(layout={"template": "bagboard", "title": {"text": title, "x": 0, "font": {"size": 15}}})


def break_long_gaps(
    times: list[datetime], values: list[float], max_gap: timedelta
) -> tuple[list[datetime | None], list[float | None]]:
    """Insert None between points further apart than max_gap so lines don't bridge missing time."""
    xs: list[datetime | None] = []
    ys: list[float | None] = []
    for index, (time, value) in enumerate(zip(times, values, strict=True)):
        if index and time - times[index - 1] > max_gap:
            xs.append(None)
            ys.append(None)
        xs.append(time)
        ys.append(value)
    return xs, ys


def bar_width_ms(times: list[datetime]) -> float:
    """Return a bar width that stays visible on a time axis whatever its span (10 min to 1 day)."""
    if len(times) < 2:
        return timedelta(hours=1).total_seconds() * 1000
    span = max(times) - min(times)
    width = min(max(span / 80, timedelta(minutes=10)), timedelta(days=1))
    return width.total_seconds() * 1000
