"""Roles and what each may do."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import structlog
from werkzeug.exceptions import Forbidden

log = structlog.get_logger("bagboard.audit")


class Role(StrEnum):
    """A user's role; each includes the rights of the ones before it."""

    VIEWER = "viewer"  # read everything
    OPERATOR = "operator"  # run downloads, extractions, uploads
    ADMIN = "admin"  # manage users, refresh the inventory

    @property
    def rank(self) -> int:
        """Return the role's position in the hierarchy."""
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        """Tell whether this role includes the required one."""
        return self.rank >= required.rank

    @classmethod
    def parse(cls, value: str) -> Role:
        """Parse a role name, raising ValueError listing the valid ones."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(f"unknown role {value!r}; use one of {', '.join(r.value for r in cls)}") from None


class AccessDenied(Forbidden):
    """The signed-in user's role does not allow this action."""


def check_role(actor: Any, required: Role, action: str) -> None:
    """Raise AccessDenied unless actor holds the required role (services call this too)."""
    if actor is None or not actor.can(required):
        log.warning("access_denied", user=getattr(actor, "name", None), action=action, required=required.value)
        raise AccessDenied(f"{action} needs the {required.value} role")
