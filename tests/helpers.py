"""Small helpers shared by the test packages."""

from __future__ import annotations

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
