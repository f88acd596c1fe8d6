"""Detection latency (receive time − header stamp): its distribution and its course over the run."""

from __future__ import annotations

import plotly.graph_objects as go

from src.analytics import RunAnalysisData
from src.analytics.figures import TITLES, draw_latency
from src.components.figures import base_figure

TITLE = TITLES["latency"]


def build(data: RunAnalysisData) -> go.Figure:
    """Draw the latency histogram beside latency over time, with p50/p95/p99 marked."""
    return draw_latency(base_figure(TITLE), data)
