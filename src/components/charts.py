"""Discover a view's chart modules by convention (charts/_chNN_name.py with build(...)) and lay out their graphs."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

CHART_MODULE = re.compile(r"^_ch(?P<order>\d{2})_(?P<name>[a-z0-9_]+)$")


@dataclass(frozen=True)
class ChartModule:
    """One discovered chart: its order, name, title and module."""

    order: int
    name: str
    title: str
    module: ModuleType

    @property
    def element_id(self) -> str:
        """Return a stable DOM id for the chart's graph."""
        return f"chart-{self.module.__name__.split('.')[-3]}-{self.name}".replace("_", "-")


def discover_charts(package: str) -> list[ChartModule]:
    """Import every chart module of package (e.g. 'pages.coverage.charts') in NN order."""
    pkg = importlib.import_module(package)
    found: list[ChartModule] = []
    for info in pkgutil.iter_modules(pkg.__path__):
        match = CHART_MODULE.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        if not callable(getattr(module, "build", None)):
            raise TypeError(f"chart module {module.__name__} has no build() function")
        title = getattr(module, "TITLE", match["name"].replace("_", " ").capitalize())
        found.append(ChartModule(int(match["order"]), match["name"], title, module))
    return sorted(found, key=lambda chart: (chart.order, chart.name))


def chart_boxes(charts: Sequence[ChartModule], *, hidden: bool = False) -> list[Any]:
    """Return one card per chart: a graph with the chart's element id in a box '<id>-box' a callback can hide."""
    hide = {"style": {"display": "none"}} if hidden else {}
    return [
        html.Div(
            dbc.Card(dbc.CardBody(dcc.Graph(id=chart.element_id, config={"displaylogo": False}))),
            id=f"{chart.element_id}-box",
            className="mb-3",
            **hide,
        )
        for chart in charts
    ]
