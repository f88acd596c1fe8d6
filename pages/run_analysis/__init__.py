"""Run analysis: one run from the cloud to FPS, latency, detection and track charts."""

from __future__ import annotations

from pages import View
from pages.run_analysis.callbacks import register_callbacks
from pages.run_analysis.layout import layout

view = View(
    key="run-analysis",
    path="/run-analysis",
    title="Run analysis",
    description="Download, extract and analyse one run.",
    layout=layout,
    register_callbacks=register_callbacks,
)
