"""The dashboard's views. Each is a package registered explicitly in app.py (see README)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dash import Dash
from dash.development.base_component import Component


@dataclass(frozen=True)
class View:
    """Describe one view: where it lives, how it draws, which callbacks it adds."""

    key: str
    path: str
    title: str
    description: str
    layout: Callable[..., Component]  # called with the URL's query parameters as keyword arguments
    register_callbacks: Callable[[Dash], None] | None = None
    uses_filters: bool = True
