"""Callbacks of the home page."""

from __future__ import annotations

from dash import Dash, Input, Output

from src.services import get_services


def register_callbacks(app: Dash) -> None:
    """Fill the home cards with whatever the services can already tell."""

    @app.callback(
        Output("home-coverage-figure", "children"),
        Output("home-coverage-note", "children"),
        Input("url", "pathname"),
    )
    def fill_cards(_pathname: str) -> tuple[str, str]:
        summary = get_services().home_summary()
        return summary.get("coverage_figure", "—"), summary.get("coverage_note", "No inventory yet.")
