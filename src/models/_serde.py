"""Private helpers that turn model values into JSON-safe values and back."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import Enum
from pathlib import PurePath
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Convert value to plain JSON types: enums as values, datetimes ISO, paths str."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if hasattr(value, "to_dict") else dataclass_to_dict(value)
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    return value


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """Return every field of the dataclass obj as a JSON-safe value."""
    return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def parse_datetime(value: str | datetime | None) -> datetime | None:
    """Parse an ISO string (or pass a datetime or None through)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)
