"""Frame and detection FPS over the run: instant (faint) and rolling (bold)."""

from __future__ import annotations

import plotly.graph_objects as go

from src.analytics import RunAnalysisData
from src.analytics.figures import TITLES, draw_fps
from src.components.figures import base_figure

TITLE = TITLES["fps"]


def build(data: RunAnalysisData) -> go.Figure:
    """Draw frame and detection FPS, instant and rolling, against seconds since the first frame."""
    return draw_fps(base_figure(TITLE), data)
