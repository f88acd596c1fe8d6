"""Callbacks of the download manager view."""

from __future__ import annotations

from dash import Dash, Input, Output

from src.auth import Role, require_role


def register_callbacks(app: Dash) -> None:
    """Register the download manager's callbacks."""

    @app.callback(
        Output("dm-action-msg", "children"),
        Input("dm-start-download", "n_clicks"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_download(_clicks: int | None) -> str:
        return "Select runs in the table first."
