"""Layout of the temporal coverage view."""

from __future__ import annotations

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import dcc, html

from pages.coverage.charts import CHARTS
from src.auth import Role, current_actor
from src.components.cards import kpi_card, kpi_row, page_header
from src.components.charts import chart_boxes
from src.components.filter_bar import filter_bar, filters_from_query
from src.services.coverage import DEFAULT_THRESHOLD_PCT

VIEW_KEY = "coverage"
KPIS = (
    ("cov-kpi-timestamps", "Timestamps"),
    ("cov-kpi-bags", "Raw bags"),
    ("cov-kpi-samples", "ML samples"),
    ("cov-kpi-coverage", "Coverage"),
    ("cov-kpi-gap", "Average gap"),
    ("cov-kpi-under", "Under-labelled"),
)
EXPECTED_RANGE = (1, 1000)

UNDER_COLUMNS = [
    {"field": "coordinate", "headerName": "Run", "flex": 3, "filter": "agTextColumnFilter", "minWidth": 260},
    {"field": "timestamp", "headerName": "Timestamp", "flex": 2, "filter": "agTextColumnFilter"},
    {
        "field": "gap_pct",
        "headerName": "Gap %",
        "flex": 1,
        "filter": "agNumberColumnFilter",
        "sort": "desc",
        "valueFormatter": {"function": "d3.format('.1f')(params.value)"},
    },
    {"field": "raw_bags", "headerName": "Raw bags", "flex": 1, "filter": "agNumberColumnFilter"},
    {"field": "ml_samples", "headerName": "ML samples", "flex": 1, "filter": "agNumberColumnFilter"},
    {"field": "expected", "headerName": "Expected", "flex": 1, "filter": "agNumberColumnFilter"},
]


def layout(expected: str | None = None, threshold: str | None = None, **query: str) -> html.Div:
    """Return the coverage view for the selection in the query string."""
    filters = filters_from_query(query)
    actor = current_actor()
    is_admin = bool(actor and actor.can(Role.ADMIN))
    return html.Div(
        [
            page_header("Temporal coverage", "Raw bags against labelled ML samples, per recording timestamp."),
            filter_bar(VIEW_KEY, filters),
            controls(expected, threshold, is_admin),
            html.Div(id="cov-banner"),
            dcc.Store(id="cov-refreshed"),
            dcc.Store(id="cov-refresh-job"),
            dcc.Download(id="cov-download"),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(id="cov-status"),
            dcc.Loading(
                html.Div(
                    chart_boxes(CHARTS),
                    id="cov-charts",
                ),
                type="dot",
                delay_show=300,
            ),
            under_labelled_table(),
            html.Div(id="cov-findings", className="mt-3"),
        ]
    )


def controls(expected: str | None, threshold: str | None, is_admin: bool) -> dbc.Row:
    """Return the expected-samples and threshold inputs, and the admin's refresh button."""
    refresh = (
        [
            dbc.ButtonGroup(
                [
                    dbc.Button("Refresh inventory", id="cov-refresh", color="secondary", outline=True, size="sm"),
                    dbc.Button(
                        "Refresh selection",
                        id="cov-refresh-selection",
                        color="secondary",
                        outline=True,
                        size="sm",
                        title="List only the selected cid/region/… in both buckets and merge it in (seconds)",
                    ),
                ]
            ),
            html.Div(id="cov-refresh-status", className="small text-muted mt-1"),
            dcc.Interval(id="cov-refresh-tick", interval=1000, disabled=True),
        ]
        if is_admin
        else []
    )
    return dbc.Row(
        [
            dbc.Col(
                [
                    dbc.Label("Expected samples per bag", html_for="cov-expected", className="small text-muted"),
                    dbc.Input(
                        id="cov-expected",
                        type="number",
                        min=EXPECTED_RANGE[0],
                        max=EXPECTED_RANGE[1],
                        step=1,
                        value=expected,
                        placeholder="default",
                        debounce=True,
                    ),
                ],
                xs=6,
                md=3,
                lg=2,
            ),
            dbc.Col(
                [
                    dbc.Label("Under-labelled above (gap %)", html_for="cov-threshold", className="small text-muted"),
                    dbc.Input(
                        id="cov-threshold",
                        type="number",
                        min=0,
                        max=100,
                        step=1,
                        value=threshold or f"{DEFAULT_THRESHOLD_PCT:g}",
                        debounce=True,
                    ),
                ],
                xs=6,
                md=3,
                lg=2,
            ),
            dbc.Col(html.Div(id="cov-controls-msg", className="small text-danger"), className="align-self-end"),
            dbc.Col(refresh, xs="auto", className="align-self-end text-end"),
        ],
        className="g-3 mb-3 align-items-end",
    )


def under_labelled_table() -> dbc.Card:
    """Return the under-labelled runs grid with a CSV export."""
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        html.H2("Under-labelled runs", className="h6 mb-0"),
                        html.Span(id="cov-under-count", className="text-muted small ms-2"),
                        dbc.Button(
                            "Export CSV",
                            id="cov-export",
                            size="sm",
                            color="secondary",
                            outline=True,
                            className="ms-auto",
                        ),
                    ],
                    className="d-flex align-items-center mb-2",
                ),
                html.P("Click a run to open it in Run analysis.", className="small text-muted mb-2"),
                dag.AgGrid(
                    id="cov-under-grid",
                    columnDefs=UNDER_COLUMNS,
                    rowData=[],
                    defaultColDef={"sortable": True, "resizable": True, "floatingFilter": True},
                    dashGridOptions={
                        "pagination": True,
                        "paginationPageSize": 20,
                        "rowSelection": {"mode": "singleRow", "checkboxes": False},
                        "animateRows": False,
                    },
                    getRowId="params.data.coordinate",
                    style={"height": "420px"},
                    className="ag-theme-alpine",
                ),
            ]
        ),
        className="mb-3",
    )
