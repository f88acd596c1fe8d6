"""Send Dash components as the plain data Dash would make of them, so a response encodes in one fast call.

Plotly's JSON encoder (which Dash uses for every callback response) first tries orjson on the whole response and,
if a single value is not plain data — one `html.Div` is enough — walks the entire response in Python instead:
4.1 ms rather than 0.4 ms for the coverage view's 130 KB at 1M objects. Callbacks on hot paths therefore pass the
components they return through `plain()`; the browser receives exactly the same JSON.
"""

from __future__ import annotations

from typing import Any

from dash.development.base_component import Component


def plain(value: Any) -> Any:
    """Return value with every Dash component in it (at any depth of children) replaced by its JSON form."""
    if isinstance(value, Component):
        data = value.to_plotly_json()
        data["props"] = {name: plain(prop) for name, prop in data["props"].items()}
        return data
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
