"""Layout of the run analysis view."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from src.components.cards import empty_state, kpi_card, kpi_row, page_header
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
                        html.Label("Timestamp", htmlFor="ra-timestamp", className="small text-muted"),
                        dcc.Dropdown(
                            id="ra-timestamp",
                            value=timestamp,
                            options=[timestamp] if timestamp else [],
                            placeholder="Choose a run",
                        ),
                    ],
                    md=4,
                ),
                className="mb-3",
            ),
            html.Div(id="ra-pipeline", className="mb-3"),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(
                empty_state("Choose a run.", "Pick the filters and a timestamp above."),
                id="ra-charts",
            ),
        ]
    )
