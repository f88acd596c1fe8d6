"""Parse run timestamp folder names into naive-UTC datetimes and order them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# One pattern serves the scalar parser (Python re) and the vectorised one (pyarrow's RE2),
# so it avoids backreferences and lookarounds, and spells digits [0-9] because Python's \d
# also matches non-ASCII digits. Dates are YYYY-MM-DD or YYYYMMDD; times
# HH:MM[:SS], HH-MM[-SS] or HHMM[SS] after 'T', '_' or ' '; an optional fraction and zone.
TIMESTAMP_PATTERN = (
    r"^(?P<year>[0-9]{4})-?(?P<month>[0-9]{2})-?(?P<day>[0-9]{2})"
    r"(?:[T_ ](?P<hour>[0-9]{2})[-:]?(?P<minute>[0-9]{2})"
    r"(?:[-:]?(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,9}))?)?"
    r"(?P<zone>Z|z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?$"
)
_REGEX = re.compile(TIMESTAMP_PATTERN)
_FIELDS = ("year", "month", "day", "hour", "minute", "second")
DATETIME_DTYPE = "datetime64[us]"
_MIN = np.datetime64(datetime.min, "us")
_MAX = np.datetime64(datetime.max, "us")


@lru_cache(maxsize=65536)
def parse_timestamp(name: str) -> datetime | None:
    """Return the naive-UTC datetime a timestamp folder name encodes, or None."""
    match = _REGEX.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    parts = match.groupdict()
    fraction = (parts["fraction"] or "")[:6].ljust(6, "0")
    try:
        value = datetime(
            *(int(parts[field] or 0) for field in _FIELDS),
            int(fraction),
            tzinfo=_zone(parts["zone"]),
        )
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return value


def _zone(text: str | None) -> timezone | None:
    """Return the tzinfo for 'Z', '+HH', '+HHMM' or '+HH:MM' (None when absent)."""
    if not text:
        return None
    if text in ("Z", "z"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("bad zone offset")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def parse_timestamps(names: pd.Series | pd.Index | pd.Categorical | Iterable[str]) -> np.ndarray:
    """Return datetime64[us] values (NaT where unparseable) for names, parsing each unique once."""
    if isinstance(names, pd.Series | pd.Index) and isinstance(names.dtype, pd.CategoricalDtype):
        names = names.array
    if isinstance(names, pd.Categorical):
        parsed = parse_unique_timestamps(names.categories)
        out = np.full(len(names), np.datetime64("NaT"), dtype=DATETIME_DTYPE)
        codes = names.codes
        valid = codes >= 0
        out[valid] = parsed[codes[valid]]
        return out
    if not isinstance(names, pd.Series | pd.Index):
        names = pd.Series(list(names), dtype=object)
    codes, uniques = pd.factorize(names)
    parsed = parse_unique_timestamps(uniques)
    out = np.full(len(codes), np.datetime64("NaT"), dtype=DATETIME_DTYPE)
    valid = codes >= 0
    out[valid] = parsed[codes[valid]]
    return out


def parse_unique_timestamps(names: Iterable[str]) -> np.ndarray:
    """Parse distinct names with pyarrow's regex kernel; return datetime64[us] with NaT."""
    values = names if isinstance(names, pd.Index | pd.Series) else list(names)
    array = pa.array(values, type=pa.string())
    n = len(array)
    out = np.full(n, np.datetime64("NaT"), dtype=DATETIME_DTYPE)
    if n == 0:
        return out
    matched = pc.extract_regex(array, TIMESTAMP_PATTERN)
    ok = ~np.asarray(matched.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if not ok.any():
        return out
    fields = {name: matched.field(name) for name in (*_FIELDS, "fraction", "zone")}

    def ints(name: str) -> np.ndarray:
        # Optional groups come back as empty strings; they mean zero.
        values = pc.if_else(pc.equal(fields[name], ""), "0", fields[name])
        return np.asarray(pc.cast(pc.fill_null(values, "0"), pa.int64()).to_numpy(zero_copy_only=False))

    year, month, day, hour, minute, second = (ints(name) for name in _FIELDS)
    fraction = pc.utf8_slice_codeunits(pc.fill_null(fields["fraction"], ""), 0, 6)
    fraction = pc.utf8_rpad(fraction, 6, "0")
    micros = np.asarray(pc.cast(fraction, pa.int64()).to_numpy(zero_copy_only=False))
    offset_min, zone_ok = _zone_offsets(fields["zone"])

    month_start = (np.clip(year, 1, 9999) - 1970) * 12 + np.clip(month, 1, 12) - 1
    first = month_start.astype("datetime64[M]").astype("datetime64[D]")
    days_in_month = ((month_start + 1).astype("datetime64[M]").astype("datetime64[D]") - first).astype(int)
    ok &= (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= days_in_month)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59) & zone_ok
    value = (
        first.astype(DATETIME_DTYPE)
        + ((day - 1) * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60) * 1_000_000
        + micros
    ).astype(DATETIME_DTYPE)
    # A zone offset can push a value past the range Python's datetime can hold.
    ok &= (value >= _MIN) & (value <= _MAX)
    out[ok] = value[ok]
    return out


def _zone_offsets(zone: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Return (offset minutes east of UTC, offset valid) per row of the zone group."""
    text = np.asarray(pc.fill_null(zone, "").to_numpy(zero_copy_only=False), dtype=object)
    minutes = np.zeros(len(text), dtype=np.int64)
    valid = np.ones(len(text), dtype=bool)
    # Zones are rare in folder names; a Python loop over the few that carry one is fine.
    for i in np.flatnonzero([bool(t) and t not in ("Z", "z") for t in text]):
        digits = text[i][1:].replace(":", "")
        hours, mins = int(digits[:2]), int(digits[2:4] or 0)
        valid[i] = hours <= 23 and mins <= 59
        minutes[i] = (hours * 60 + mins) * (-1 if text[i][0] == "-" else 1)
    return minutes, valid


def timestamp_order(raw: np.ndarray | pd.Index | list[str], parsed: np.ndarray) -> np.ndarray:
    """Return positions sorting by (parsed is NaT, parsed, raw string)."""
    raw_keys = np.asarray(raw, dtype=object)
    parsed = np.asarray(parsed, dtype=DATETIME_DTYPE)
    nat = np.isnat(parsed)
    ticks = np.where(nat, 0, parsed.astype(np.int64))
    # lexsort sorts by the last key first.
    raw_rank = np.argsort(np.argsort(raw_keys, kind="stable"), kind="stable")
    return np.lexsort((raw_rank, ticks, nat))


def is_timestamp_sorted(raw: np.ndarray, parsed: np.ndarray) -> bool:
    """Tell whether raw (with parsed values) is already in timestamp-rule order."""
    if len(raw) < 2:
        return True
    nat = np.isnat(parsed)
    ticks = np.where(nat, 0, parsed.astype(np.int64))
    a_nat, b_nat, a_t, b_t = nat[:-1], nat[1:], ticks[:-1], ticks[1:]
    raw = np.asarray(raw, dtype=object)
    raw_ok = raw[:-1] <= raw[1:]
    ok = (a_nat < b_nat) | ((a_nat == b_nat) & ((a_t < b_t) | ((a_t == b_t) & raw_ok)))
    return bool(ok.all())


def sort_timestamps(names: Iterable[str]) -> list[str]:
    """Return names ordered by the timestamp rule."""
    values = list(names)
    order = timestamp_order(values, parse_unique_timestamps(values))
    return [values[i] for i in order]
