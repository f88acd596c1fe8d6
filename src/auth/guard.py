"""Role checks for callbacks and services: refuse on the server, not by hiding buttons."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import has_request_context
from flask_login import current_user

from src.auth.roles import AccessDenied, Role, check_role

P = ParamSpec("P")
R = TypeVar("R")
__all__ = ["AccessDenied", "check_role", "current_actor", "require_role"]


def current_actor() -> Any:
    """Return the signed-in user (or None outside a request)."""
    if not has_request_context():
        return None
    return current_user if current_user.is_authenticated else None


def require_role(required: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap a Dash callback so it runs only for users holding the required role."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            check_role(current_actor(), required, func.__name__)
            return func(*args, **kwargs)

        return wrapper

    return decorate
