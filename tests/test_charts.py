"""Every chart module found by convention builds a non-empty figure from fixture data."""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Callable
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest
from dash._utils import to_json

import pages
from src.components.charts import ChartModule, discover_charts
from src.models import CoverageReport
from src.services import coverage
from tests.analytics.helpers import chart_fixture
from tests.fleet.helpers import comparison_fixture, fleet_fixture


def coverage_fixture() -> CoverageReport:
    """Return a report for a partial selection, so every coverage chart has something to draw."""
    runs = pd.DataFrame(
        {
            "cid": ["acme"] * 4,
            "regionid": ["north"] * 4,
            "fieldid": ["f1", "f1", "f2", "f2"],
            "twid": ["tw1"] * 4,
            "lbid": ["lb1"] * 4,
            "timestamp": ["2024-05-01T10-00-00", "2024-05-04T10-00-00", "2024-05-01T11-00-00", "odd-name"],
            "ts_parsed": pd.to_datetime(["2024-05-01 10:00", "2024-05-04 10:00", "2024-05-01 11:00", None]),
            "raw_bags": [2, 1, 3, 1],
            "ml_samples": [30, 0, 51, 4],
        }
    )
    filters = {"cid": "acme", "regionid": "north"}
    return CoverageReport(
        filters=filters,
        expected_samples_per_bag=17,
        threshold_pct=50.0,
        temporal=coverage.temporal_data(runs, 17),
        statistics=coverage.coverage_statistics(runs, 17),
        breakdown=coverage.coverage_breakdown(runs, filters, 17),
        inventory_available=True,
    )


# One fixture per view; a new chart in an existing view needs no edit here.
FIXTURES: dict[str, Callable[[], Any]] = {
    "coverage": coverage_fixture,
    "run_analysis": chart_fixture,
    "fleet": fleet_fixture,
    "compare": comparison_fixture,
}


def all_charts() -> list[tuple[str, ChartModule]]:
    found = []
    for info in pkgutil.iter_modules(pages.__path__):
        try:
            charts = discover_charts(f"pages.{info.name}.charts")
        except ModuleNotFoundError:
            continue
        found += [(info.name, chart) for chart in charts]
    return found


CHARTS = all_charts()


def test_charts_are_discovered_in_order():
    coverage_charts = [chart for view, chart in CHARTS if view == "coverage"]
    assert [c.order for c in coverage_charts] == sorted(c.order for c in coverage_charts)
    assert len(coverage_charts) >= 3


@pytest.mark.parametrize(("view", "chart"), CHARTS, ids=[f"{v}:{c.name}" for v, c in CHARTS])
def test_chart_builds_a_non_empty_figure(view: str, chart: ChartModule):
    assert view in FIXTURES, f"add a fixture for the {view} view's charts"
    built = chart.module.build(FIXTURES[view]())
    assert isinstance(built, go.Figure | dict), "build() returns a go.Figure or a figure dict"
    # A figure dict skips Plotly's validation when the view draws it; here it gets the full check.
    figure = go.Figure(built)
    assert json.loads(to_json(built)), "the figure must serialise the way Dash sends it"
    assert figure.data, f"{chart.module.__name__} drew no traces"
    assert any(len(v) for t in figure.data if (v := t.x if t.x is not None else t.y) is not None)
    assert chart.title


def test_a_chart_without_build_is_refused(tmp_path, monkeypatch):
    package = tmp_path / "fakeview" / "charts"
    package.mkdir(parents=True)
    (tmp_path / "fakeview" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "_ch01_broken.py").write_text("TITLE = 'broken'\n")
    (package / "helper.py").write_text("")  # not a chart: ignored
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="no build"):
        discover_charts("fakeview.charts")


def test_a_heatmap_cell_names_its_own_row_child_for_the_drill_down_click():
    from pages.coverage.charts import _ch03_coverage_by_child as by_child

    report = coverage_fixture()
    figure = go.Figure(by_child.build(report))
    heatmap = next(trace for trace in figure.data if trace.type == "heatmap")
    for row, child in zip(heatmap.customdata, report.breakdown.children, strict=True):
        assert set(row) == {child}
    assert len(heatmap.customdata[0]) == len(report.breakdown.days)
