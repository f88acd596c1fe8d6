"""Roles and what each may do."""

from __future__ import annotations

from enum import StrEnum


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
            raise ValueError(
                f"unknown role {value!r}; use one of {', '.join(r.value for r in cls)}"
            ) from None
