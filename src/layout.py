"""The app shell (sidebar + page area) and the router that fills the page area."""

from __future__ import annotations

from collections.abc import Sequence

from dash import Dash, Input, Output, State, dcc, html
from dash.development.base_component import Component
from dash.exceptions import UnsupportedRelativePath
from flask_login import current_user

from pages import View
from src.components.cards import empty_state
from src.components.filter_bar import parse_query
from src.components.sidebar import sidebar
from src.core.logging import get_logger

log = get_logger("bagboard.layout")


def serve_shell(views: Sequence[View], url_base: str) -> Component:
    """Return the shell for the signed-in user (Dash calls this on every page load)."""
    name = current_user.name if current_user.is_authenticated else ""
    role = current_user.role.value if current_user.is_authenticated else ""
    return html.Div(
        [
            # callback-nav: a callback that sets href pushes history and tells every Location (the router too).
            dcc.Location(id="url", refresh="callback-nav"),
            sidebar(views, name, role, url_base),
            html.Main(id="page-content", className="bb-main"),
        ],
        className="bb-shell",
    )


def find_view(views: Sequence[View], path: str) -> View | None:
    """Return the view registered at path (trailing slash ignored)."""
    wanted = "/" + path.strip("/")
    return next((view for view in views if view.path == wanted), None)


def register_router(app: Dash, views: Sequence[View]) -> None:
    """Render the view for the URL's path; query changes alone don't re-render the page."""

    @app.callback(Output("page-content", "children"), Input("url", "pathname"), State("url", "search"))
    def route(pathname: str | None, search: str | None) -> Component:
        pathname = pathname if isinstance(pathname, str) and pathname else "/"
        try:
            path = app.strip_relative_path(pathname) or ""
        except UnsupportedRelativePath:  # only a forged request sends a path outside the app's base
            path = pathname.strip("/")
        view = find_view(views, path)
        if view is None:
            return empty_state("Page not found.", f"There is no view at /{path}. Use the sidebar to navigate.")
        try:
            return view.layout(**parse_query(search))
        except Exception:
            log.exception("view_layout_failed", view=view.key)
            return empty_state(f"{view.title} could not be drawn.", "The error was logged; please report it.")
