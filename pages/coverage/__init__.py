"""Temporal coverage: raw bags vs ML samples per timestamp, gaps and under-labelled runs."""

from __future__ import annotations

from pages import View
from pages.coverage.callbacks import register_callbacks
from pages.coverage.layout import layout

view = View(
    key="coverage",
    path="/coverage",
    title="Temporal coverage",
    description="Raw bags vs ML samples per timestamp.",
    layout=layout,
    register_callbacks=register_callbacks,
)
