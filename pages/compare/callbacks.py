"""Callbacks of the comparison: list the analysed runs, compare the chosen two, render the model."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, html, no_update
from dash.exceptions import PreventUpdate

from pages.compare.charts import CHARTS
from pages.compare.layout import LBID_MEDIAN, VIEW_KEY
from src.components.filter_bar import filter_url_id, filters_from_query, parse_query
from src.components.plain import plain
from src.core.extensions import get_services
from src.core.logging import get_logger
from src.models.fleet import KPI_COLUMNS, RunComparison
from src.services.data_state import clean_filters

log = get_logger("bagboard.compare")
HIDDEN, SHOWN = {"display": "none"}, {}
MAX_OPTIONS = 2000
FILTER_URL_ID = filter_url_id(VIEW_KEY)


def _fmt(value: float | None, signed: bool = False) -> str:
    """Format a KPI or a difference (— when missing)."""
    if value is None:
        return "—"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def kpi_table(comparison: RunComparison) -> dbc.Table:
    """Return the KPIs of both sides with the difference B − A."""
    diff = comparison.differences()
    header = html.Thead(
        html.Tr([html.Th("KPI"), html.Th(comparison.a.label), html.Th(comparison.b.label), html.Th("B − A")])
    )
    rows = [
        html.Tr(
            [
                html.Td(label if unit.startswith("/") else f"{label} ({unit})"),
                html.Td(_fmt(comparison.a.kpis.get(name))),
                html.Td(_fmt(comparison.b.kpis.get(name))),
                html.Td(_fmt(diff[name], signed=True), id=f"cmp-diff-{name}"),
            ]
        )
        for name, label, unit in KPI_COLUMNS
    ]
    return dbc.Table([header, html.Tbody(rows)], size="sm", striped=True, id="cmp-kpi-table")


def register_callbacks(app: Dash) -> None:
    """Register the comparison's callbacks."""

    @app.callback(
        Output("cmp-a", "options"),
        Output("cmp-b", "options"),
        Input(FILTER_URL_ID, "search"),
        Input("cmp-a", "value"),
    )
    def list_runs(search: str | None, chosen: Any) -> tuple:
        try:
            filters = clean_filters(filters_from_query(parse_query(search)))
        except ValueError:
            raise PreventUpdate from None
        paths = get_services().fleet.get_runs(filters)["coordinate"].tolist()[:MAX_OPTIONS]
        if isinstance(chosen, str) and chosen and chosen not in paths:
            paths = [chosen, *paths]  # keep a linked run visible whatever the filter
        options = [{"label": path, "value": path} for path in paths]
        return options, options

    @app.callback(Output("cmp-b", "disabled"), Input("cmp-vs-median", "value"))
    def toggle_b(vs: Any) -> bool:
        return isinstance(vs, list) and LBID_MEDIAN in vs

    @app.callback(
        Output("cmp-msg", "children"),
        Output("cmp-kpis", "children"),
        *[Output(chart.element_id, "figure") for chart in CHARTS],
        *[Output(f"{chart.element_id}-box", "style") for chart in CHARTS],
        Input("cmp-a", "value"),
        Input("cmp-b", "value"),
        Input("cmp-vs-median", "value"),
    )
    def compare(a: Any, b: Any, vs: Any) -> tuple:
        against_median = isinstance(vs, list) and LBID_MEDIAN in vs
        if not isinstance(a, str) or not a or (not against_median and not (isinstance(b, str) and b)):
            hint = html.P("Pick run A, and run B or the lbid median.", className="small text-muted mb-0")
            return ("", plain(hint), *[{}] * len(CHARTS), *[HIDDEN] * len(CHARTS))
        try:
            comparison = get_services().fleet.compare(a, None if against_median else b)
        except ValueError as exc:  # FleetInputError: not analysed, no peers, or a forged coordinate
            log.info("compare_refused", error=str(exc))
            return (str(exc), no_update, *[no_update] * (2 * len(CHARTS)))
        figures = [chart.module.build(comparison) for chart in CHARTS]
        return (
            "",
            plain(kpi_table(comparison)),
            *[figure or {} for figure in figures],
            *[SHOWN if figure else HIDDEN for figure in figures],
        )
