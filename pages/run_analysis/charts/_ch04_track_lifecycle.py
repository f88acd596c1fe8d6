"""How long tracks lived: a histogram of last − first stamp per track id."""

from __future__ import annotations

import plotly.graph_objects as go

from src.analytics import RunAnalysisData
from src.analytics.figures import TITLES, draw_lifecycle
from src.components.figures import base_figure

TITLE = TITLES["lifecycle"]


def build(data: RunAnalysisData) -> go.Figure:
    """Draw the distribution of track lifetimes with the mean marked."""
    return draw_lifecycle(base_figure(TITLE), data)
