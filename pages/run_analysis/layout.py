"""Layout of the run analysis view."""

from __future__ import annotations

import math

import dash_bootstrap_components as dbc
from dash import dcc, html

from pages.run_analysis.charts import CHARTS
from pages.run_analysis.inspector import LAYERS, empty_figure
from src.components.cards import kpi_card, kpi_row, page_header
from src.components.charts import chart_boxes
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


def start_time(query: dict[str, str]) -> float | None:
    """Return the URL's ?t= (seconds since the run's first frame) when it is a finite number."""
    try:
        value = float(query.get("t", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def inspector(t: float | None) -> html.Div:
    """Return the frame inspector and the moments list (hidden until the run is extracted)."""
    controls = html.Div(
        [
            dbc.Button("◀", id="ra-fi-prev", color="secondary", outline=True, size="sm", title="Previous frame (←)"),
            html.Div(
                dcc.Slider(
                    id="ra-fi-slider",
                    min=0,
                    max=1,
                    step=0.001,
                    value=0,
                    marks=None,
                    updatemode="mouseup",
                    allow_direct_input=False,
                    tooltip={"placement": "bottom", "always_visible": False},
                ),
                className="flex-grow-1",
            ),
            dbc.Button("▶", id="ra-fi-next", color="secondary", outline=True, size="sm", title="Next frame (→)"),
        ],
        className="d-flex align-items-center gap-2 mt-2",
    )
    layers = dbc.Checklist(
        id="ra-fi-layers",
        options=[{"label": label, "value": key} for key, label in LAYERS],
        value=[key for key, _ in LAYERS],
        inline=True,
        switch=True,
        className="small mt-2",
    )
    viewer = dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        html.H2("Frame inspector", className="h6 mb-0"),
                        html.Span(
                            "← → step a frame · click a chart point or a moment to jump", className="small text-muted"
                        ),
                    ],
                    className="d-flex justify-content-between align-items-baseline flex-wrap mb-2",
                ),
                html.Div(
                    dcc.Graph(
                        id="ra-fi-graph",
                        figure=empty_figure("Loading the frame…"),
                        config={
                            "displaylogo": False,
                            "scrollZoom": True,
                            "modeBarButtonsToRemove": ["select2d", "lasso2d"],
                        },
                    ),
                    id="ra-fi-frame",
                ),
                controls,
                layers,
            ]
        ),
        className="mb-3",
    )
    side = [
        dbc.Card(dbc.CardBody([html.H2("This frame", className="h6"), html.Div(id="ra-fi-info")]), className="mb-3"),
        dbc.Card(
            dbc.CardBody([html.H2("Moments", className="h6"), html.Div(id="ra-moments")]),
            className="mb-3",
        ),
    ]
    return html.Div(
        [
            dbc.Row([dbc.Col(viewer, lg=8), dbc.Col(side, lg=4)], className="g-3"),
            dcc.Store(id="ra-fi-run"),
            dcc.Store(id="ra-fi-state"),
            dcc.Store(id="ra-fi-start", data={"t": t}),
            dcc.Store(id="ra-fi-url"),
            dcc.Store(id="ra-fi-url-done"),
        ],
        id="ra-inspector",
        style={"display": "none"},
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
            inspector(start_time(query)),
            html.Div(
                chart_boxes(CHARTS, hidden=True),
                id="ra-charts",
            ),
            html.Div(id="ra-topics", className="mb-3"),
        ]
    )
