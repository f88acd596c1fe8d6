"""Download manager: run states, raw downloads, ML uploads, dataset fetches and jobs."""

from __future__ import annotations

from pages import View
from pages.download_manager.callbacks import register_callbacks
from pages.download_manager.layout import layout

view = View(
    key="download-manager",
    path="/downloads",
    title="Download manager",
    description="State of every run and the jobs that move data.",
    layout=layout,
    register_callbacks=register_callbacks,
)
