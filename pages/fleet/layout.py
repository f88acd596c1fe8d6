"""Layout of the fleet view: perception KPIs of every analysed run under a filter, rolled up."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from pages.fleet.charts import CHARTS
from src.auth import Role, current_actor
from src.components.cards import kpi_card, kpi_row, page_header
from src.components.charts import chart_boxes
from src.components.filter_bar import filter_bar, filters_from_query
from src.services.fleet import THRESHOLD_RANGE
from src.services.fleet_stats import DEFAULT_THRESHOLD

VIEW_KEY = "fleet"
KPIS = (
    ("fl-kpi-analysed", "Analysed runs"),
    ("fl-kpi-fps", "Mean FPS"),
    ("fl-kpi-p95", "Latency p95"),
    ("fl-kpi-drops", "Frame drops / min"),
    ("fl-kpi-tracks", "Tracks / min"),
    ("fl-kpi-lifetime", "Mean track lifetime"),
)


def layout(batch: str | None = None, **query: str) -> html.Div:
    """Return the fleet view for the selection in the query string (and a batch to follow, if named)."""
    filters = filters_from_query(query)
    actor = current_actor()
    may_operate = bool(actor and actor.can(Role.OPERATOR))
    return html.Div(
        [
            page_header(
                "Fleet",
                "Perception health of every analysed run under the filter: per child, over time, and the outliers.",
            ),
            filter_bar(VIEW_KEY, filters),
            controls(may_operate),
            html.Div(id="fl-coverage", className="mb-2"),
            batch_panel(batch),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(id="fl-status"),
            dcc.Download(id="fl-download"),
            dcc.Store(id="fl-refresh"),
            dcc.Loading(
                html.Div(
                    chart_boxes(CHARTS),
                    id="fl-charts",
                ),
                type="dot",
                delay_show=300,
            ),
            dbc.Card(
                dbc.CardBody([html.H2("Per child", className="h6"), html.Div(id="fl-children")]), className="mb-3"
            ),
            dbc.Card(
                dbc.CardBody(
                    [
                        html.H2("Outlier runs", className="h6"),
                        html.P(
                            "Runs whose figure is far from their group's median (robust z-score on the median "
                            "absolute deviation). Click one to open it; 'compare' sets it against its lbid's median.",
                            className="small text-muted mb-2",
                        ),
                        html.Div(id="fl-outliers"),
                    ]
                ),
                className="mb-3",
            ),
        ]
    )


def controls(may_operate: bool) -> dbc.Row:
    """Return the period switch, the outlier threshold, the CSV export and the operators' batch button."""
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Over time per", className="small text-muted"),
                    dbc.RadioItems(
                        id="fl-period",
                        options=[{"label": "day", "value": "day"}, {"label": "week", "value": "week"}],
                        value="day",
                        inline=True,
                    ),
                ],
                xs="auto",
            ),
            dbc.Col(
                [
                    dbc.Label("Outlier above |z|", html_for="fl-threshold", className="small text-muted"),
                    dbc.Input(
                        id="fl-threshold",
                        type="number",
                        min=THRESHOLD_RANGE[0],
                        max=THRESHOLD_RANGE[1],
                        step=0.5,
                        value=DEFAULT_THRESHOLD,
                        debounce=True,
                    ),
                ],
                xs=6,
                md=3,
                lg=2,
            ),
            dbc.Col(html.Div(id="fl-controls-msg", className="small text-danger"), className="align-self-end"),
            dbc.Col(
                [
                    dbc.Button("Export CSV", id="fl-export", color="secondary", outline=True, size="sm"),
                    dbc.Button(
                        "Analyse the rest",
                        id="fl-start-batch",
                        color="primary",
                        size="sm",
                        className="ms-2",
                        disabled=not may_operate,
                        title=None if may_operate else "Needs the operator role",
                    ),
                ],
                xs="auto",
                className="align-self-end text-end",
            ),
        ],
        className="g-3 mb-3 align-items-end",
    )


def batch_panel(batch: str | None) -> html.Div:
    """Return the followed batch's progress, per-run status and cancel button (filled by a polling callback)."""
    return html.Div(
        [
            dcc.Store(id="fl-batch-id", data=batch),
            dcc.Interval(id="fl-batch-tick", interval=1000, disabled=not batch),
            html.Div(id="fl-batch-msg", className="small mb-2"),
            html.Div(id="fl-batch"),
        ],
        className="mb-3",
    )
