"""The fleet view's charts: every `_chNN_name.py` here with a build(report) is drawn, in NN order."""

from __future__ import annotations

from src.components.charts import discover_charts

CHARTS = discover_charts(__name__)
