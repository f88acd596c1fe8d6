"""Compare: two analysed runs (or a run and its lbid's median) side by side, distributions overlaid."""

from __future__ import annotations

from pages import View
from pages.compare.callbacks import register_callbacks
from pages.compare.layout import layout

view = View(
    key="compare",
    path="/compare",
    title="Compare runs",
    description="Two analysed runs side by side.",
    layout=layout,
    register_callbacks=register_callbacks,
)
