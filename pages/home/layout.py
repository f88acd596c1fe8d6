"""Layout of the home page."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from src.components.cards import page_header

CARDS = (
    (
        "coverage",
        "/coverage",
        "Temporal coverage",
        "Raw bags vs ML samples per timestamp, gaps and under-labelled runs.",
    ),
    (
        "run-analysis",
        "/run-analysis",
        "Run analysis",
        "One run from cloud to charts: FPS, latency, detections, tracks.",
    ),
    (
        "download-manager",
        "/downloads",
        "Download manager",
        "State of every run, downloads, ML uploads, datasets, jobs.",
    ),
)


def layout(**_query: str) -> html.Div:
    """Return the card grid linking the three views."""
    cards = [
        dbc.Col(
            dbc.Card(
                dcc.Link(
                    dbc.CardBody(
                        [
                            html.H2(title, className="h5"),
                            html.P(text, className="text-muted small mb-3"),
                            html.Div("—", className="bb-kpi-value", id=f"home-{key}-figure"),
                            html.Div("", className="bb-kpi-note", id=f"home-{key}-note"),
                        ]
                    ),
                    href=path,
                ),
                className="bb-home-card",
                id=f"home-card-{key}",
            ),
            md=4,
            className="mb-3",
        )
        for key, path, title, text in CARDS
    ]
    return html.Div(
        [
            page_header("bagboard", "Recordings, labels and perception metrics for every run."),
            dbc.Row(cards, className="g-3"),
            html.Div(id="home-status", className="small text-muted mt-2"),
        ]
    )
