"""Small helpers shared by the test packages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from src.auth.roles import Role


def wait_for(
    predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition", interval: float = 0.05
) -> Any:
    """Poll until predicate returns something truthy and return it; fail naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout:g} s")
        time.sleep(interval)


@dataclass(frozen=True)
class Actor:
    """A user as the services see one (for jobs started outside any web page)."""

    name: str
    role: Role

    def can(self, required: Role) -> bool:
        """Tell whether the actor's role includes required."""
        return self.role.allows(required)


def parse_id(component: str) -> str | dict:
    """Turn a pattern-matching id's JSON back into the dict the browser sends."""
    return json.loads(component) if component.startswith("{") else component


def callback_body(key: str, spec: dict, values: dict[str, Any], triggered: str | None = None) -> dict[str, Any]:
    """Build the JSON the browser posts to /_dash-update-component for the callback `key` (spec: its inputs and
    state as /_dash-dependencies or app.callback_map spell them); values maps 'id.prop' to a value."""
    outputs = []
    for part in key.strip(".").split("..."):
        component, prop = part.rsplit(".", 1)
        outputs.append({"id": parse_id(component), "property": prop})

    def fill(items: list[dict]) -> list[dict]:
        return [
            {
                "id": parse_id(item["id"]),
                "property": item["property"],
                "value": values.get(f"{item['id']}.{item['property']}"),
            }
            for item in items
        ]

    return {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": fill(spec["inputs"]),
        "state": fill(spec["state"]),
        "changedPropIds": [triggered] if triggered else [f"{i['id']}.{i['property']}" for i in spec["inputs"]],
    }
