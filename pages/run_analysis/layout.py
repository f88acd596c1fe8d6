"""Layout of the run analysis view."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from pages.run_analysis.charts import CHARTS
from src.components.cards import kpi_card, kpi_row, page_header
from src.components.filter_bar import filter_bar, filters_from_query

VIEW_KEY = "run-analysis"
KPIS = (
    ("ra-kpi-fps", "Mean FPS"),
    ("ra-kpi-latency", "Mean latency"),
    ("ra-kpi-p95", "p95 latency"),
    ("ra-kpi-tracks", "Tracks"),
    ("ra-kpi-lifetime", "Avg lifetime"),
    ("ra-kpi-drops", "Frame drops"),
)


def layout(**query: str) -> html.Div:
    """Return the run analysis view for the run in the query string."""
    filters = filters_from_query(query)
    timestamp = query.get("timestamp")
    return html.Div(
        [
            page_header("Run analysis", "Take one run from the cloud to charts."),
            filter_bar(VIEW_KEY, filters),
            dbc.Row(
                dbc.Col(
                    [
                        html.Label("Run (timestamp)", className="bb-field-label"),
                        dcc.Dropdown(
                            id="ra-timestamp",
                            value=timestamp,
                            options=[timestamp] if timestamp else [],
                            placeholder="Choose the five levels above, then a run",
                        ),
                    ],
                    md=5,
                ),
                className="mb-3",
            ),
            dbc.Card(dbc.CardBody(html.Div(id="ra-pipeline")), className="mb-3"),
            dcc.Store(id="ra-job"),
            dcc.Store(id="ra-refresh"),
            dcc.Interval(id="ra-tick", interval=1000, disabled=True),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(id="ra-status"),
            html.Div(
                [
                    html.Div(
                        dbc.Card(dbc.CardBody(dcc.Graph(id=chart.element_id, config={"displaylogo": False}))),
                        id=f"{chart.element_id}-box",
                        className="mb-3",
                        style={"display": "none"},
                    )
                    for chart in CHARTS
                ],
                id="ra-charts",
            ),
            html.Div(id="ra-topics", className="mb-3"),
        ]
    )
