"""Run analytics: perception metrics of one extracted run (FPS, latency, detections, tracks, frame drops).

Layers, bottom up: ``loading`` reads the extraction outputs (the CSV column names live in ``COLUMNS``),
``metrics.compute_metrics`` is a pure, vectorised function of the three tables, ``figures`` draws the result, and
``AnalyticsService`` caches it under processed/{coord}/analysis/. ``python -m src.analytics DIR`` prints it.
"""

from __future__ import annotations

from src.analytics.figures import build_all_figures, build_figures
from src.analytics.loading import COLUMNS, AnalysisInputError, load_extracted, load_metadata
from src.analytics.metrics import MetricSeries, RateSeries, RunAnalysisData, compute_metrics
from src.analytics.service import AnalyticsService

__all__ = [
    "COLUMNS",
    "AnalysisInputError",
    "AnalyticsService",
    "MetricSeries",
    "RateSeries",
    "RunAnalysisData",
    "build_all_figures",
    "build_figures",
    "compute_metrics",
    "load_extracted",
    "load_metadata",
]
