"""Callbacks of the home page."""

from __future__ import annotations

from dash import Dash, Input, Output

from src.core.extensions import get_services
from src.formatting import format_bytes


def register_callbacks(app: Dash) -> None:
    """Fill the home cards with live figures from the inventory."""

    @app.callback(
        Output("home-coverage-figure", "children"),
        Output("home-coverage-note", "children"),
        Output("home-run-analysis-figure", "children"),
        Output("home-run-analysis-note", "children"),
        Output("home-download-manager-figure", "children"),
        Output("home-download-manager-note", "children"),
        Input("url", "pathname"),
    )
    def fill_cards(_pathname: str) -> tuple[str, ...]:
        services = get_services()
        info = services.inventory.get_cache_info()
        if not info["available"]:
            hint = "No inventory yet: run 'flask --app app inventory refresh'."
            return "—", hint, "—", hint, "—", hint
        stats = services.data_state.get_coverage_statistics({})
        return (
            f"{stats.overall_coverage_pct:.1f} %",
            f"labelled of expected · {stats.under_labeled_count} under-labelled runs",
            f"{info['runs']:,} runs",
            f"{stats.total_raw_bags:,} bags · {stats.total_ml_samples:,} samples",
            format_bytes(info["bytes"]["raw"]),
            f"raw recordings in {services.settings.raw_bucket}",
        )
