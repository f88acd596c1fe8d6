"""The home page: a card per view, filled with live figures as services provide them."""

from __future__ import annotations

from pages import View
from pages.home.callbacks import register_callbacks
from pages.home.layout import layout

view = View(
    key="home",
    path="/",
    title="Home",
    description="Overview of the inventory and recent work.",
    layout=layout,
    register_callbacks=register_callbacks,
    uses_filters=False,
)
