"""Layout of the temporal coverage view."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from src.components.cards import kpi_card, kpi_row, page_header
from src.components.filter_bar import filter_bar, filters_from_query

KPIS = (
    ("cov-kpi-timestamps", "Timestamps"),
    ("cov-kpi-bags", "Raw bags"),
    ("cov-kpi-samples", "ML samples"),
    ("cov-kpi-coverage", "Coverage"),
    ("cov-kpi-gap", "Average gap"),
    ("cov-kpi-under", "Under-labelled"),
)


def layout(**query: str) -> html.Div:
    """Return the coverage view for the filters in the query string."""
    filters = filters_from_query(query)
    return html.Div(
        [
            page_header(
                "Temporal coverage", "Raw bags against labelled ML samples, per recording timestamp."
            ),
            filter_bar(filters),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(id="cov-status"),
            dbc.Row(id="cov-charts", className="g-3"),
            html.Div(id="cov-table"),
        ]
    )
