"""CSV cells a spreadsheet will not run: names come from the buckets, so a cell may start like a formula."""

from __future__ import annotations

from typing import Any

import pandas as pd

# OWASP CSV injection: a spreadsheet treats a cell starting with one of these as a formula (tab and CR too).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Return a text cell that starts like a formula with a leading apostrophe; other values unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of frame whose text columns are safe to open in a spreadsheet (numbers stay numbers)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise)
    safe.columns = [neutralise(str(column)) for column in safe.columns]
    return safe


def to_safe_csv(frame: pd.DataFrame) -> str:
    """Return frame as CSV text with every formula-like cell neutralised (use this for every CSV export)."""
    return neutralise_frame(frame).to_csv(index=False)
