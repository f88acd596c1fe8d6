"""Fleet: perception KPIs of every analysed run under a filter, per child, over time, with outliers."""

from __future__ import annotations

from pages import View
from pages.fleet.callbacks import register_callbacks
from pages.fleet.layout import layout

view = View(
    key="fleet",
    path="/fleet",
    title="Fleet",
    description="Perception health across runs.",
    layout=layout,
    register_callbacks=register_callbacks,
)
