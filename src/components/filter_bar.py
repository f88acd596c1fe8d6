"""The cid → regionid → fieldid → twid → lbid filter bar, whose state lives in the URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import ALL, MATCH, Dash, Input, Output, ctx, dcc, html, no_update

from src.models import FILTER_LEVELS, validate_part

LEVEL_LABELS = {"cid": "Customer", "regionid": "Region", "fieldid": "Field", "twid": "TW", "lbid": "LB"}
OptionsProvider = Callable[[str, dict[str, str]], list[str]]


def filter_id(view: str, level: str) -> dict[str, str]:
    """Return the pattern-matching id of a view's dropdown for one level."""
    return {"type": "filter", "view": view, "level": level}


def filter_url_id(view: str) -> dict[str, str]:
    """Return the id of the Location inside a view's filter bar."""
    return {"type": "filter-url", "view": view}


def parse_query(search: str | None) -> dict[str, str]:
    """Return the first value of every query parameter ('?a=1&b=2' → {'a': '1', 'b': '2'})."""
    if search is not None and not isinstance(search, str):  # only a forged request sends anything else
        raise ValueError("the URL query must be a string")
    parsed = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    return {key: values[0] for key, values in parsed.items() if values}


def parse_filters(search: str | None) -> dict[str, str]:
    """Return the valid, contiguous filter levels in a query string; drop the rest."""
    return filters_from_query(parse_query(search))


def filters_from_query(query: Mapping[str, str]) -> dict[str, str]:
    """Return the valid, contiguous filter levels of parsed query parameters."""
    filters: dict[str, str] = {}
    for level in FILTER_LEVELS:
        value = query.get(level)
        if not value:
            break  # a level below an unset one means nothing
        try:
            filters[level] = validate_part(level, value)
        except ValueError:
            break
    return filters


def build_search(filters: Mapping[str, str], extra: Mapping[str, str] | None = None) -> str:
    """Return '?…' holding the filters (in hierarchy order) and any extra parameters."""
    params = [(level, filters[level]) for level in FILTER_LEVELS if filters.get(level)]
    params += [(key, value) for key, value in (extra or {}).items() if value not in (None, "")]
    return "?" + urlencode(params) if params else ""


def filter_bar(view: str, filters: Mapping[str, str]) -> html.Div:
    """Return a view's filter bar with the given initial selection."""
    columns = [
        dbc.Col(
            [
                html.Label(LEVEL_LABELS[level], className="bb-field-label"),
                dcc.Dropdown(
                    id=filter_id(view, level),
                    value=filters.get(level),
                    options=[{"label": filters[level], "value": filters[level]}] if filters.get(level) else [],
                    placeholder="All",
                    clearable=True,
                    className=f"bb-filter-{level}",
                ),
            ],
            xs=12,
            sm=6,
            lg=True,
        )
        for level in FILTER_LEVELS
    ]
    # Each view's bar carries its own Location, with ids scoped to the view, so a callback that reads the
    # selection only ever has inputs from one page (Dash refuses callbacks whose inputs are half missing).
    return html.Div(
        [dcc.Location(id=filter_url_id(view), refresh="callback-nav"), dbc.Row(columns, className="g-2")],
        className="bb-filter-bar",
    )


def register_filter_callbacks(app: Dash, options_provider: Callable[[], OptionsProvider | None]) -> None:
    """Keep every view's dropdowns, their options and the URL query string in step."""

    @app.callback(
        Output(filter_url_id(MATCH), "search", allow_duplicate=True),
        Output(filter_id(MATCH, ALL), "value"),
        Output(filter_id(MATCH, ALL), "options"),
        Input(filter_url_id(MATCH), "search"),
        Input(filter_id(MATCH, ALL), "value"),
        prevent_initial_call="initial_duplicate",
    )
    def sync_filters(search: str | None, values: list[str | None]) -> tuple:
        query = parse_query(search)
        triggered = ctx.triggered_id
        # One dropdown changed by the user; a fresh page (all dropdowns at once) or a URL change reads the URL.
        if len(ctx.triggered_prop_ids) == 1 and isinstance(triggered, dict) and triggered.get("type") == "filter":
            changed = FILTER_LEVELS.index(triggered.get("level"))  # a forged level raises ValueError: 400
            # Choosing a level clears the levels below it.
            filters: dict[str, str] = {}
            for level, value in zip(FILTER_LEVELS[: changed + 1], values, strict=False):
                if not value:
                    break
                filters[level] = value
        else:
            filters = parse_filters(search)
        extra = {key: value for key, value in query.items() if key not in FILTER_LEVELS}
        new_search = build_search(filters, extra)
        provider = options_provider()
        options: list[list[dict[str, str]]] = []
        for index, level in enumerate(FILTER_LEVELS):
            parent = dict(list(filters.items())[:index])
            reachable = len(parent) == index
            names = provider(level, parent) if provider and reachable else []
            if filters.get(level) and filters[level] not in names:
                names = [filters[level], *names]  # keep a bookmarked value visible even if it vanished
            options.append([{"label": name, "value": name} for name in names])
        search_out = new_search if new_search != (search or "") else no_update
        return search_out, [filters.get(level) for level in FILTER_LEVELS], options
