"""Callbacks of the temporal coverage view."""

from __future__ import annotations

from dash import Dash, Input, Output, html

from src.components.cards import empty_state


def register_callbacks(app: Dash) -> None:
    """Register the coverage view's callbacks."""

    @app.callback(Output("cov-status", "children"), Input("url", "search"))
    def show_status(_search: str | None) -> html.Div:
        return empty_state(
            "No inventory yet.",
            "An admin can build it with 'flask --app app inventory refresh' or the refresh button.",
        )
