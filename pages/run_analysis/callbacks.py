"""Callbacks of the run analysis view."""

from __future__ import annotations

from dash import Dash


def register_callbacks(app: Dash) -> None:
    """Register the run analysis view's callbacks (none yet: the pipeline lands with its services)."""
