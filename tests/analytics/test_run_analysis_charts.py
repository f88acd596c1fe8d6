"""The run analysis view's chart modules and the figures behind them: non-empty, and light on long series."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from src.analytics import build_all_figures, build_figures, compute_metrics
from src.analytics.figures import GL_THRESHOLD, MAX_POINTS, decimate
from src.components.charts import ChartModule, discover_charts
from tests.analytics.helpers import MS, T0, chart_fixture, images_only_fixture, tables

CHARTS = discover_charts("pages.run_analysis.charts")


def _points(trace: object) -> int:
    """Return how many x (or y) values a trace holds (numpy arrays have no truth value)."""
    values = getattr(trace, "x", None)
    if values is None:
        values = getattr(trace, "y", None)
    return 0 if values is None else len(values)


def test_the_five_charts_are_discovered_in_order():
    assert [chart.name for chart in CHARTS] == ["fps", "activity", "latency", "track_lifecycle", "drops"]
    assert all(chart.title for chart in CHARTS)


@pytest.mark.parametrize("chart", CHARTS, ids=[chart.name for chart in CHARTS])
def test_chart_builds_a_non_empty_figure(chart: ChartModule):
    figure = chart.module.build(chart_fixture())
    assert isinstance(figure, go.Figure)
    assert figure.data, f"{chart.module.__name__} drew no traces"
    assert any(_points(trace) for trace in figure.data)
    assert figure.layout.title.text == chart.title


@pytest.mark.parametrize("chart", CHARTS, ids=[chart.name for chart in CHARTS])
def test_chart_survives_a_run_with_images_only(chart: ChartModule):
    figure = chart.module.build(images_only_fixture())
    assert isinstance(figure, go.Figure)
    assert figure.data or figure.layout.annotations  # a chart or a note saying there is nothing to draw


def test_drops_are_shaded_on_the_time_axis():
    figure = next(c for c in CHARTS if c.name == "drops").module.build(chart_fixture())
    shading = next(trace for trace in figure.data if trace.fill == "toself")
    assert list(shading.x[:4]) == pytest.approx([1.0, 1.0, 1.5, 1.5])  # the 0.5 s gap after the frame at 1.0 s


def test_build_figures_fills_the_model():
    plots = build_figures(chart_fixture())
    for figure in (plots.fps_figure, plots.stats_figure, plots.latency_figure, plots.lifecycle_figure):
        assert isinstance(figure, go.Figure) and figure.data


def test_decimate_keeps_extremes_in_order():
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 500)
    y[12_345], y[67_890] = 50.0, -50.0  # one spike and one dip among 100k points
    dx, dy = decimate(x, y, max_points=1000)
    assert dx.size <= 1000
    assert np.all(np.diff(dx) > 0)
    assert dy.max() == 50.0 and dy.min() == -50.0
    assert decimate(x[:10], y[:10])[0].size == 10  # short series pass through


def test_long_series_reach_the_figures_decimated_and_in_webgl():
    n = 60_000  # 30 min at 33 Hz, one detection per frame
    stamps = T0 + np.arange(n, dtype=np.int64) * 30 * MS
    frames = [("b", "/cam", int(s), int(s), i) for i, s in enumerate(stamps)]
    detections = [(int(s), int(s) + 40 * MS, "car", 1, 1, 1, 1, 1) for s in stamps]
    tracking = [(int(s), int(s), i // 300, "car", 1, 1, 1, 1, 1) for i, s in enumerate(stamps)]
    data = compute_metrics(*tables(frames, detections, tracking))
    assert len(data.metrics.frame_fps_rolling) == n  # the metrics keep every value
    figures = build_all_figures(data)
    traces = [trace for figure in figures.values() for trace in figure.data]
    assert max(_points(trace) for trace in traces) <= MAX_POINTS
    long_lines = [t for t in traces if getattr(t, "mode", None) == "lines" and _points(t) > GL_THRESHOLD]
    assert long_lines and all(isinstance(trace, go.Scattergl) for trace in long_lines)
