"""KPI and empty-state cards."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html


def kpi_card(title: str, value: str, *, card_id: str, note: str = "") -> dbc.Card:
    """Return a small card showing one headline figure."""
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(title, className="bb-kpi-title"),
                html.Div(value, className="bb-kpi-value", id=f"{card_id}-value"),
                html.Div(note, className="bb-kpi-note", id=f"{card_id}-note"),
            ]
        ),
        className="bb-kpi h-100",
        id=card_id,
    )


def kpi_row(cards: list[dbc.Card]) -> dbc.Row:
    """Lay KPI cards out in a responsive row."""
    return dbc.Row([dbc.Col(card, xs=6, md=4, xl=2, className="mb-3") for card in cards], className="g-3")


def empty_state(message: str, hint: str = "", *, element_id: str | None = None) -> html.Div:
    """Explain why there is nothing to show, and what to do about it."""
    children: list[html.Div | html.P] = [html.P(message, className="mb-1 fw-semibold")]
    if hint:
        children.append(html.P(hint, className="mb-0 small"))
    return html.Div(children, className="bb-empty", **({"id": element_id} if element_id else {}))


def page_header(title: str, lead: str) -> html.Div:
    """Return a view's title and one-line description."""
    return html.Div([html.H1(title, className="bb-page-title"), html.P(lead, className="bb-page-lead")])
