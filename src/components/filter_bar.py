"""The cid → regionid → fieldid → twid → lbid filter bar, whose state lives in the URL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, ctx, dcc, html, no_update

from src.models import FILTER_LEVELS, validate_part

LEVEL_LABELS = {"cid": "Customer", "regionid": "Region", "fieldid": "Field", "twid": "TW", "lbid": "LB"}
OptionsProvider = Callable[[str, dict[str, str]], list[str]]


def filter_id(level: str) -> str:
    """Return the component id of a level's dropdown."""
    return f"filter-{level}"


def parse_query(search: str | None) -> dict[str, str]:
    """Return the first value of every query parameter ('?a=1&b=2' → {'a': '1', 'b': '2'})."""
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


def filter_bar(filters: Mapping[str, str]) -> html.Div:
    """Return the filter bar with the given initial selection."""
    columns = [
        dbc.Col(
            [
                html.Label(LEVEL_LABELS[level], htmlFor=filter_id(level)),
                dcc.Dropdown(
                    id=filter_id(level),
                    value=filters.get(level),
                    options=[{"label": filters[level], "value": filters[level]}] if filters.get(level) else [],
                    placeholder="All",
                    clearable=True,
                    persistence=False,
                ),
            ],
            xs=12,
            sm=6,
            lg=True,
        )
        for level in FILTER_LEVELS
    ]
    return html.Div(dbc.Row(columns, className="g-2"), className="bb-filter-bar", id="filter-bar")


def register_filter_callbacks(app: Dash, options_provider: Callable[[], OptionsProvider | None]) -> None:
    """Keep dropdowns, their options and the URL query string in step."""
    level_inputs = [Input(filter_id(level), "value") for level in FILTER_LEVELS]

    @app.callback(
        Output("url", "search", allow_duplicate=True),
        *[Output(filter_id(level), "value") for level in FILTER_LEVELS],
        *[Output(filter_id(level), "options") for level in FILTER_LEVELS],
        Input("url", "search"),
        *level_inputs,
        prevent_initial_call="initial_duplicate",
    )
    def sync_filters(search: str | None, *values: str | None) -> tuple:
        query = parse_query(search)
        triggered = {prop.split(".")[0] for prop in ctx.triggered_prop_ids}
        # One dropdown changed by the user; a fresh page (all dropdowns at once) or a URL change reads the URL.
        if len(triggered) == 1 and ctx.triggered_id in {filter_id(level) for level in FILTER_LEVELS}:
            changed = FILTER_LEVELS.index(ctx.triggered_id.removeprefix("filter-"))
            # Choosing a level clears the levels below it.
            chosen = {level: v for level, v in zip(FILTER_LEVELS, values, strict=True) if v}
            filters: dict[str, str] = {}
            for level in FILTER_LEVELS[: changed + 1]:
                if not chosen.get(level):
                    break
                filters[level] = chosen[level]
        else:
            filters = parse_filters(search)
        extra = {key: value for key, value in query.items() if key not in FILTER_LEVELS}
        new_search = build_search(filters, extra)
        provider = options_provider()
        options: list[list[dict[str, str]]] = []
        for index, level in enumerate(FILTER_LEVELS):
            parent = dict(list(filters.items())[:index])
            reachable = index == 0 or len(parent) == index
            names = provider(level, parent) if provider and reachable else []
            if filters.get(level) and filters[level] not in names:
                names = [filters[level], *names]  # keep a bookmarked value visible even if it vanished
            options.append([{"label": name, "value": name} for name in names])
        values_out = [filters.get(level) for level in FILTER_LEVELS]
        search_out = new_search if new_search != (search or "") else no_update
        return (search_out, *values_out, *options)
