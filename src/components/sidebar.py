"""The left navigation: brand, one link per view, the signed-in user, and log out (which signs out everywhere)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from src.components.filter_bar import build_search, parse_filters
from src.core.extensions import get_services
from src.formatting import format_age

if TYPE_CHECKING:
    from pages import View


def nav_link_id(view: View) -> str:
    """Return the id of a view's sidebar link."""
    return f"nav-{view.key}"


def sidebar(views: Sequence[View], user_name: str, role: str, url_base: str) -> html.Nav:
    """Return the sidebar for the signed-in user."""
    links = [
        dbc.NavLink(view.title, href=url_base.rstrip("/") + view.path, id=nav_link_id(view), active="exact")
        for view in views
    ]
    return html.Nav(
        [
            html.Div("bagboard", className="bb-brand h5 mb-0"),
            html.Div(id="inventory-badge", className="small text-muted"),
            dcc.Interval(id="inventory-badge-tick", interval=60_000),
            dbc.Nav(links, vertical=True, pills=True, className="bb-nav"),
            html.Div(
                [
                    html.Div(["Signed in as ", html.B(user_name, id="sidebar-user")]),
                    html.Div(["Role: ", html.Span(role, id="sidebar-role")]),
                    html.A(
                        "Log out",
                        href="/logout",
                        id="logout-link",
                        title="Ends your sessions on every browser and device",
                        className="btn btn-sm btn-outline-secondary mt-2",
                    ),
                ],
                className="bb-user",
            ),
        ],
        className="bb-sidebar",
        id="sidebar",
    )


def register_sidebar_callbacks(app: Dash, views: Sequence[View], url_base: str) -> None:
    """Keep sidebar links carrying the filters, and the inventory badge current."""

    @app.callback(
        *[Output(nav_link_id(view), "href") for view in views],
        Input("url", "search"),
    )
    def keep_filters_on_links(search: str | None) -> tuple[str, ...]:
        query = build_search(parse_filters(search))
        return tuple(url_base.rstrip("/") + view.path + (query if view.uses_filters else "") for view in views)

    @app.callback(
        Output("inventory-badge", "children"),
        Input("url", "pathname"),
        Input("inventory-badge-tick", "n_intervals"),
    )
    def show_inventory_badge(_pathname: str | None, _tick: int | None) -> list:
        return inventory_badge(get_services().inventory.get_cache_info())


def inventory_badge(info: dict) -> list:
    """Summarise the inventory: run count, age, and a warning when a refresh failed."""
    if not info.get("available"):
        return [dbc.Badge("no inventory yet", color="secondary", id="inventory-runs")]
    children: list = [
        dbc.Badge(f"{info['runs']:,} runs", color="light", text_color="dark", id="inventory-runs", className="me-1"),
        html.Span(f"updated {format_age(info.get('age_seconds'))}", id="inventory-age"),
    ]
    if info.get("stale_since"):
        children.append(
            html.Div(
                f"stale since {info['stale_since'][:16].replace('T', ' ')} UTC",
                className="text-danger",
                id="inventory-stale",
                title=info.get("last_error") or info.get("stale_reason") or "",
            )
        )
    return children
