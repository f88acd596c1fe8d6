"""Layout of the comparison: pick two analysed runs, or one run against its lbid's median."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from pages.compare.charts import CHARTS
from src.components.cards import page_header
from src.components.charts import chart_boxes
from src.components.filter_bar import filter_bar, filters_from_query

VIEW_KEY = "compare"
LBID_MEDIAN = "lbid"


def _picked(value: str | None) -> list[dict[str, str]]:
    """Return a dropdown's options holding just the value from the URL (the rest load with the filter)."""
    return [{"label": value, "value": value}] if value else []


def layout(a: str | None = None, b: str | None = None, vs: str | None = None, **query: str) -> html.Div:
    """Return the comparison for runs a and b (or a against its lbid's median when vs=lbid)."""
    filters = filters_from_query(query)
    against_median = vs == LBID_MEDIAN or not b
    return html.Div(
        [
            page_header("Compare runs", "Two analysed runs side by side, or a run against the median of its lbid."),
            filter_bar(VIEW_KEY, filters),
            dbc.Row(
                [
                    dbc.Col(
                        [
                            dbc.Label("Run A", className="small text-muted"),
                            dcc.Dropdown(id="cmp-a", options=_picked(a), value=a, placeholder="an analysed run"),
                        ],
                        md=5,
                    ),
                    dbc.Col(
                        [
                            dbc.Label("Run B", className="small text-muted"),
                            dcc.Dropdown(
                                id="cmp-b",
                                options=_picked(b),
                                value=None if against_median else b,
                                placeholder="an analysed run",
                                disabled=against_median,
                            ),
                        ],
                        md=5,
                    ),
                    dbc.Col(
                        dbc.Checklist(
                            id="cmp-vs-median",
                            options=[{"label": "vs median of A's lbid", "value": LBID_MEDIAN}],
                            value=[LBID_MEDIAN] if against_median else [],
                            switch=True,
                        ),
                        md=2,
                        className="align-self-end",
                    ),
                ],
                className="g-3 mb-3",
            ),
            html.Div(id="cmp-msg", className="small text-danger mb-2"),
            dbc.Card(dbc.CardBody(html.Div(id="cmp-kpis")), className="mb-3"),
            html.Div(chart_boxes(CHARTS)),
        ]
    )
