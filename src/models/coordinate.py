"""The run coordinate: the address of every recording, sample and output."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

MAX_PART_LENGTH = 128
HIERARCHY_LEVELS: tuple[str, ...] = ("cid", "regionid", "fieldid", "twid", "lbid", "timestamp")
FILTER_LEVELS: tuple[str, ...] = HIERARCHY_LEVELS[:-1]


def validate_part(name: str, value: object) -> str:
    """Return value if it is a safe single path segment, else raise ValueError naming it."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {type(value).__name__}")
    if value == "":
        raise ValueError(f"{name} must not be empty")
    if len(value) > MAX_PART_LENGTH:
        raise ValueError(f"{name} is longer than {MAX_PART_LENGTH} characters")
    if value in (".", ".."):
        raise ValueError(f"{name} must not be '.' or '..'")
    if ".." in value:
        raise ValueError(f"{name} must not contain '..'")
    for char in value:
        if char in "/\\":
            raise ValueError(f"{name} must not contain '/' or '\\'")
        # Cc covers NUL and every other control character, including DEL.
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"{name} must not contain control characters")
    return value


@dataclass(frozen=True, order=True)
class RunCoordinate:
    """Address one run: cid/regionid/fieldid/twid/lbid/timestamp."""

    cid: str
    regionid: str
    fieldid: str
    twid: str
    lbid: str
    timestamp: str

    LEVELS: ClassVar[tuple[str, ...]] = HIERARCHY_LEVELS

    def __post_init__(self) -> None:
        for f in fields(self):
            validate_part(f.name, getattr(self, f.name))

    def to_path_str(self, separator: str = "/") -> str:
        """Join the parts with separator (default '/')."""
        return separator.join(self.to_path_tuple())

    def to_path_tuple(self) -> tuple[str, ...]:
        """Return the parts in hierarchy order."""
        return (self.cid, self.regionid, self.fieldid, self.twid, self.lbid, self.timestamp)

    def to_dict(self) -> dict[str, str]:
        """Return the parts keyed by level name."""
        return asdict(self)

    def filters(self) -> dict[str, str]:
        """Return the five filter levels (everything but the timestamp)."""
        return {level: getattr(self, level) for level in FILTER_LEVELS}

    @classmethod
    def from_path(cls, path: str) -> RunCoordinate:
        """Parse 'cid/regionid/fieldid/twid/lbid/timestamp' (no leading or trailing slash)."""
        if not isinstance(path, str):
            raise ValueError("coordinate path must be a string")
        parts = path.split("/")
        if len(parts) != len(HIERARCHY_LEVELS):
            raise ValueError(
                f"coordinate path needs {len(HIERARCHY_LEVELS)} parts ({'/'.join(HIERARCHY_LEVELS)}), got {len(parts)}"
            )
        return cls(*parts)

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> RunCoordinate:
        """Build from a mapping holding all six levels."""
        missing = [level for level in HIERARCHY_LEVELS if not data.get(level)]
        if missing:
            raise ValueError(f"coordinate is missing {', '.join(missing)}")
        return cls(**{level: data[level] for level in HIERARCHY_LEVELS})

    @classmethod
    def from_filters(cls, filters: dict[str, str], timestamp: str) -> RunCoordinate:
        """Build from the five filter levels plus a timestamp."""
        return cls.from_dict({**filters, "timestamp": timestamp})

    def __str__(self) -> str:
        return self.to_path_str()
