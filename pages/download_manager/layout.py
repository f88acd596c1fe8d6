"""Layout of the download manager view."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from src.auth import Role, current_actor
from src.components.cards import empty_state, kpi_card, kpi_row, page_header
from src.components.filter_bar import filter_bar, filters_from_query

VIEW_KEY = "download-manager"
KPIS = (
    ("dm-kpi-runs", "Runs"),
    ("dm-kpi-cloud", "In the cloud"),
    ("dm-kpi-downloaded", "Downloaded"),
    ("dm-kpi-extracted", "Extracted"),
    ("dm-kpi-analyzed", "Analysed"),
    ("dm-kpi-jobs", "Running jobs"),
)


def layout(**query: str) -> html.Div:
    """Return the download manager for the filters in the query string."""
    filters = filters_from_query(query)
    actor = current_actor()
    may_operate = bool(actor and actor.can(Role.OPERATOR))
    return html.Div(
        [
            page_header("Download manager", "Where every run stands, and the jobs that move data."),
            filter_bar(VIEW_KEY, filters),
            kpi_row([kpi_card(title, "—", card_id=card_id) for card_id, title in KPIS]),
            html.Div(empty_state("No runs to show yet."), id="dm-table"),
            dbc.Tabs(
                [
                    dbc.Tab(
                        html.Div(
                            [
                                dbc.Button(
                                    "Download selected runs",
                                    id="dm-start-download",
                                    color="primary",
                                    disabled=not may_operate,
                                    title=None if may_operate else "Needs the operator role",
                                ),
                                html.Div(id="dm-action-msg", className="mt-2 small"),
                            ],
                            className="p-3",
                        ),
                        label="Raw download",
                        tab_id="dm-tab-raw",
                    ),
                    dbc.Tab(html.Div("ML upload", className="p-3"), label="ML upload", tab_id="dm-tab-upload"),
                    dbc.Tab(
                        html.Div("Dataset fetch", className="p-3"),
                        label="Dataset fetch",
                        tab_id="dm-tab-dataset",
                    ),
                    dbc.Tab(html.Div("Jobs", className="p-3"), label="Jobs", tab_id="dm-tab-jobs"),
                ],
                id="dm-tabs",
                active_tab="dm-tab-raw",
                className="mt-3",
            ),
        ]
    )
