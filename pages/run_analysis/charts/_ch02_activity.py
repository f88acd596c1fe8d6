"""Detections per detection message and active tracks per tracking message over the run."""

from __future__ import annotations

import plotly.graph_objects as go

from src.analytics import RunAnalysisData
from src.analytics.figures import TITLES, draw_activity
from src.components.figures import base_figure

TITLE = TITLES["activity"]


def build(data: RunAnalysisData) -> go.Figure:
    """Draw how many objects the detector and the tracker reported over time."""
    return draw_activity(base_figure(TITLE), data)
