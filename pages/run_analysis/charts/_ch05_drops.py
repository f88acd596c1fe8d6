"""Frame drops: instant frame FPS with every gap over drop_factor × the median interval shaded."""

from __future__ import annotations

import plotly.graph_objects as go

from src.analytics import RunAnalysisData
from src.analytics.figures import TITLES, draw_drops
from src.components.figures import base_figure

TITLE = TITLES["drops"]


def build(data: RunAnalysisData) -> go.Figure:
    """Draw frame FPS with the drop intervals shaded on the time axis."""
    return draw_drops(base_figure(TITLE), data)
