"""Index both buckets into a columnar inventory, snapshot it to parquet and answer queries from it."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import structlog
from cachelib import BaseCache

from src.models.coordinate import (
    FILTER_LEVELS,
    HIERARCHY_LEVELS,
    MAX_PART_LENGTH,
    RunCoordinate,
    validate_part,
)
from src.models.state import CloudRawStatus
from src.services.coverage import RunSelection, TimestampCategories
from src.services.timestamps import (
    DATETIME_DTYPE,
    is_timestamp_sorted,
    parse_unique_timestamps,
    timestamp_order,
)
from src.storage.base import Bucket, ObjectInfo, StorageError

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
SCHEMA_KEY = b"bagboard.inventory.schema"
META_KEY = b"bagboard.inventory.meta"
GENERATION_KEY = "inventory:generation"
STALE_KEY = "inventory:stale"
ERROR_KEY = "inventory:last_error"
REFRESH_LOCK_KEY = "inventory:refreshing"

BUCKETS: tuple[str, ...] = ("raw", "ml")
KINDS: tuple[str, ...] = ("bag", "sample", "label", "other", "inflight")
BAG, SAMPLE, LABEL, OTHER, INFLIGHT = range(len(KINDS))
RAW, ML = 0, 1
OBJECT_COLUMNS: tuple[str, ...] = (
    *HIERARCHY_LEVELS,
    "rel_name",
    "size",
    "updated",
    "crc32c",
    "md5",
    "generation",
    "bucket",
    "kind",
)
COUNT_COLUMNS: tuple[str, ...] = (
    "raw_bags",
    "raw_bytes",
    "raw_objects",
    "ml_samples",
    "ml_labels",
    "ml_bytes",
    "ml_objects",
)
TEMPORAL_COLUMNS: tuple[str, ...] = (*HIERARCHY_LEVELS, "ts_parsed", "raw_bags", "ml_samples")
RUN_COLUMNS: tuple[str, ...] = (*HIERARCHY_LEVELS, "ts_parsed", *COUNT_COLUMNS)
UNRECOGNISED_SAMPLE = 100
PROGRESS_EVERY = 10_000

# Suffix rules run on the lower-cased name below the timestamp (RE2 syntax).
_INFLIGHT_RE = r"\.(active|tmp)$"
_BAG_RE = r"\.(bag|mcap|db3)$"
_SAMPLE_RE = r"\.(jpe?g|png)$"
_LABEL_RE = r"\.(json|txt)$"
# What validate_part rejects, as one RE2 pattern: '..', '/', '\' and Unicode Cc characters.
_BAD_PART_RE = r"\.\.|[\x00-\x1f\x7f-\x9f\\/]"

_LISTING_SCHEMA = pa.schema(
    [
        ("bucket", pa.string()),
        ("name", pa.string()),
        ("size", pa.int64()),
        ("updated", pa.timestamp("us", tz="UTC")),
        ("crc32c", pa.string()),
        ("md5", pa.string()),
        ("generation", pa.int64()),
    ]
)

Progress = Callable[[str, int], None]


class SnapshotError(ValueError):
    """The snapshot file cannot be used (corrupt, foreign or from another schema version)."""


# -- the inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    """Hold one immutable inventory: objects, per-run aggregates and lookups over them."""

    objects: pd.DataFrame
    runs: pd.DataFrame
    unrecognised: list[str]
    unrecognised_count: int
    built_at: datetime
    duration: float
    counts: dict[str, dict[str, int]]
    index: RunIndex = field(repr=False, compare=False)

    @property
    def run_count(self) -> int:
        """Return the number of runs."""
        return len(self.runs)


def assemble_inventory(
    objects: pd.DataFrame,
    *,
    built_at: datetime,
    duration: float,
    unrecognised: list[str],
    unrecognised_count: int,
) -> Inventory:
    """Derive runs, counts and lookups from a sorted objects frame."""
    objects, ts_parsed = _normalise_categories(objects)
    runs = _runs_from_objects(objects, ts_parsed)
    bucket = objects["bucket"].cat.codes.to_numpy()
    kind = objects["kind"].cat.codes.to_numpy()
    size = objects["size"].to_numpy()
    counts: dict[str, dict[str, int]] = {}
    for code, name in enumerate(BUCKETS):
        mask = bucket == code
        kinds = np.bincount(kind[mask], minlength=len(KINDS))
        counts[name] = {
            "objects": int(mask.sum()),
            "bytes": int(size[mask].sum()),
            **{kind_name: int(n) for kind_name, n in zip(KINDS, kinds, strict=True)},
        }
    return Inventory(
        objects=objects,
        runs=runs,
        unrecognised=unrecognised[:UNRECOGNISED_SAMPLE],
        unrecognised_count=unrecognised_count,
        built_at=built_at,
        duration=duration,
        counts=counts,
        index=RunIndex(objects, runs),
    )


def _normalise_categories(objects: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Order categories lexically (timestamps by the rule) without moving rows; return parsed timestamps."""
    changed: dict[str, pd.Categorical] = {}
    ts_parsed = _empty_ts()
    for level in HIERARCHY_LEVELS:
        cats = objects[level].cat.categories
        if level == "timestamp":
            values = np.asarray(cats, dtype=object)
            ts_parsed = parse_unique_timestamps(cats)
            # The snapshot is written in order, so checking is enough on the usual path.
            if not is_timestamp_sorted(values, ts_parsed):
                order = timestamp_order(values, ts_parsed)
                changed[level] = objects[level].cat.reorder_categories(cats[order])
                ts_parsed = ts_parsed[order]
        elif not cats.is_monotonic_increasing:
            changed[level] = objects[level].cat.reorder_categories(cats.sort_values())
    return (objects.assign(**changed) if changed else objects), ts_parsed


def _runs_from_objects(objects: pd.DataFrame, ts_parsed: np.ndarray) -> pd.DataFrame:
    """Aggregate sorted objects into one row per run with row offsets; ts_parsed is per category."""
    n = len(objects)
    codes = [objects[level].cat.codes.to_numpy() for level in HIERARCHY_LEVELS]
    if n and any((c < 0).any() for c in codes):
        raise SnapshotError("objects without a full coordinate")
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
        for c in codes:
            change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    stops = np.append(starts[1:], n).astype(np.int64) if n else np.zeros(0, dtype=np.int64)
    run_codes = [c[starts] for c in codes]
    # Rows must be grouped by run in code order; a run split in two means the rows are unsorted.
    if len(starts) > 1 and not np.array_equal(np.lexsort(run_codes[::-1]), np.arange(len(starts))):
        raise SnapshotError("objects are not sorted by coordinate")
    bucket = objects["bucket"].cat.codes.to_numpy()
    kind = objects["kind"].cat.codes.to_numpy()
    size = objects["size"].to_numpy()
    is_ml = bucket == ML
    # Within a run raw rows come first; an ml row followed by a raw row means unsorted data.
    if n > 1 and (is_ml[:-1] & ~is_ml[1:] & ~change[1:]).any():
        raise SnapshotError("objects are not sorted by bucket within a run")

    def per_run(values: np.ndarray) -> np.ndarray:
        if not len(starts):
            return np.zeros(0, dtype=np.int64)
        return np.add.reduceat(values, starts, dtype=np.int64)

    live = kind != INFLIGHT
    raw_bag = ~is_ml & (kind == BAG)
    ml_sample = is_ml & (kind == SAMPLE)
    ml_label = is_ml & (kind == LABEL)
    data: dict[str, Any] = {}
    for level, c, cats in zip(
        HIERARCHY_LEVELS, run_codes, (objects[lv].cat.categories for lv in HIERARCHY_LEVELS), strict=True
    ):
        data[level] = pd.Categorical.from_codes(c, categories=cats)
    data["ts_parsed"] = ts_parsed[run_codes[-1]] if len(ts_parsed) else _empty_ts()
    data["raw_bags"] = per_run(raw_bag)
    data["raw_bytes"] = per_run(np.where(raw_bag, size, 0))
    data["raw_objects"] = per_run(~is_ml & live)
    data["ml_samples"] = per_run(ml_sample)
    data["ml_labels"] = per_run(ml_label)
    data["ml_bytes"] = per_run(np.where(ml_sample | ml_label, size, 0))
    data["ml_objects"] = per_run(is_ml & live)
    data["obj_start"] = starts.astype(np.int64)
    data["raw_stop"] = starts + per_run(~is_ml)
    data["obj_stop"] = stops
    return pd.DataFrame(data)


def _empty_ts() -> np.ndarray:
    """Return an empty datetime column."""
    return np.zeros(0, dtype=DATETIME_DTYPE)


class RunIndex:
    """Answer prefix queries on the sorted runs table by binary search; no object scans."""

    def __init__(self, objects: pd.DataFrame, runs: pd.DataFrame) -> None:
        self.n_runs = len(runs)
        self.codes = [runs[level].cat.codes.to_numpy() for level in HIERARCHY_LEVELS]
        cats = [runs[level].cat.categories for level in HIERARCHY_LEVELS]
        self.values = [np.asarray(c, dtype=object) for c in cats]
        self.arrow_values = [pa.array(v, type=pa.string()) for v in self.values]
        self.lookup = [{value: code for code, value in enumerate(v)} for v in self.values]
        self.columns = {name: runs[name].to_numpy() for name in runs.columns if name not in HIERARCHY_LEVELS}
        self.kind = objects["kind"].cat.codes.to_numpy()
        self.size = objects["size"].to_numpy()
        # What coverage queries need, ready to slice: per-category parsed times and string ranks of timestamps.
        ts_times = np.full(len(self.values[-1]), np.datetime64("NaT"), dtype=DATETIME_DTYPE)
        ts_times[self.codes[-1]] = self.columns["ts_parsed"]
        self.timestamps = TimestampCategories(self.values[-1], ts_times)
        self.raw_bags = self.columns["raw_bags"].astype(np.int64, copy=False)
        self.ml_samples = self.columns["ml_samples"].astype(np.int64, copy=False)
        rel = pa.array(objects["rel_name"].array)  # zero-copy view of the arrow-backed strings
        self.rel = rel if isinstance(rel, pa.ChunkedArray) else pa.chunked_array([rel], type=rel.type)
        self._children: dict[tuple[int, tuple[str, ...]], list[str]] = {}

    def span(self, prefix: tuple[str, ...]) -> tuple[int, int]:
        """Return the run rows [lo, hi) whose leading levels equal prefix."""
        lo, hi = 0, self.n_runs
        for depth, value in enumerate(prefix):
            code = self.lookup[depth].get(value)
            if code is None:
                return 0, 0
            column = self.codes[depth][lo:hi]
            lo, hi = (
                lo + int(np.searchsorted(column, code, "left")),
                lo + int(np.searchsorted(column, code, "right")),
            )
            if lo == hi:
                break
        return lo, hi

    def run_row(self, coord: RunCoordinate) -> int | None:
        """Return the runs row of coord, or None."""
        lo, hi = self.span(coord.to_path_tuple())
        return lo if hi > lo else None

    def children(self, depth: int, parent: tuple[str, ...]) -> list[str]:
        """Return the distinct values at depth below parent, in category order (memoised)."""
        key = (depth, parent)
        cached = self._children.get(key)
        if cached is None:
            lo, hi = self.span(parent)
            if lo == hi:
                return []  # unknown parents are not memoised, so odd input cannot grow the memo
            column = self.codes[depth][lo:hi]
            if len(parent) == depth:
                # Sorted within an exact parent: distinct values are where the code changes.
                keep = np.ones(len(column), dtype=bool)
                keep[1:] = column[1:] != column[:-1]
                uniq = column[keep]
            else:
                uniq = np.unique(column)
            cached = self.values[depth][uniq].tolist()
            self._children[key] = cached
        return list(cached)

    def rows(self, filters: dict[str, str]) -> np.ndarray:
        """Return runs rows matching filters, ordered by the timestamp rule then hierarchy."""
        lo, hi, rows = self._matches(filters)
        if rows is None:
            rows = np.arange(lo, hi)
        # Timestamp categories are already in rule order, so their codes sort by the rule.
        return rows[np.argsort(self.codes[-1][rows], kind="stable")]

    def selection(self, filters: dict[str, str]) -> RunSelection:
        """Return the runs under filters as arrays, in coordinate order (views, no copies, for leading levels)."""
        lo, hi, rows = self._matches(filters)
        picked = slice(lo, hi) if rows is None else rows
        return RunSelection(
            codes=tuple(c[picked] for c in self.codes),
            values=tuple(self.values),
            timestamps=self.timestamps,
            raw_bags=self.raw_bags[picked],
            ml_samples=self.ml_samples[picked],
        )

    def _matches(self, filters: dict[str, str]) -> tuple[int, int, np.ndarray | None]:
        """Return the span [lo, hi) of the leading filter levels and, when later levels are filtered too, the rows."""
        prefix: list[str] = []
        for level in FILTER_LEVELS:
            if level not in filters:
                break
            prefix.append(filters[level])
        lo, hi = self.span(tuple(prefix))
        rest = [depth for depth, level in enumerate(HIERARCHY_LEVELS) if depth >= len(prefix) and level in filters]
        if not rest:
            return lo, hi, None
        rows = np.arange(lo, hi)
        for depth in rest:
            code = self.lookup[depth].get(filters[HIERARCHY_LEVELS[depth]], -1)
            rows = rows[self.codes[depth][rows] == code]
        return lo, hi, rows

    def frame(self, rows: np.ndarray, columns: Iterable[str]) -> pd.DataFrame:
        """Build a result frame for rows with plain string hierarchy columns."""
        data: dict[str, Any] = {}
        for name in columns:
            if name in HIERARCHY_LEVELS:
                depth = HIERARCHY_LEVELS.index(name)
                taken = self.arrow_values[depth].take(pa.array(self.codes[depth][rows]))
                data[name] = pd.array(taken, dtype="str")
            else:
                data[name] = self.columns[name][rows]
        return pd.DataFrame(data)


# -- building -----------------------------------------------------------------------------------


def list_bucket(label: str, bucket: Bucket, progress: Progress | None = None) -> tuple[pa.Table, list[str]]:
    """List every object of bucket into a listing table; also return names arrow cannot encode."""
    names: list[str] = []
    sizes: list[int] = []
    updated: list[datetime | None] = []
    crcs: list[str | None] = []
    md5s: list[str | None] = []
    generations: list[int | None] = []
    for info in bucket.iter_objects(""):
        names.append(info.name)
        sizes.append(info.size)
        updated.append(info.updated)
        crcs.append(info.crc32c)
        md5s.append(info.md5)
        generations.append(info.generation)
        if progress is not None and len(names) % PROGRESS_EVERY == 0:
            progress(f"listing {label} bucket", len(names))
    if progress is not None:
        progress(f"listed {label} bucket", len(names))
    bad: list[str] = []
    try:
        name_array = pa.array(names, type=pa.string())
    except (UnicodeError, pa.ArrowException):
        # Undecodable file names (surrogate escapes) cannot be keys; report, never crash.
        keep = [_encodable(n) for n in names]
        bad = [
            f"{label}:{n.encode('utf-8', 'backslashreplace').decode()}"
            for n, k in zip(names, keep, strict=True)
            if not k
        ]
        names, sizes, updated, crcs, md5s, generations = (
            [v for v, k in zip(col, keep, strict=True) if k] for col in (names, sizes, updated, crcs, md5s, generations)
        )
        name_array = pa.array(names, type=pa.string())
    table = pa.table(
        [
            pa.array([label] * len(names), type=pa.string()),
            name_array,
            pa.array(sizes, type=pa.int64()),
            pa.array(updated, type=pa.timestamp("us", tz="UTC")),
            pa.array(crcs, type=pa.string()),
            pa.array(md5s, type=pa.string()),
            pa.array(generations, type=pa.int64()),
        ],
        schema=_LISTING_SCHEMA,
    )
    return table, bad


def _encodable(name: str) -> bool:
    """Tell whether name is valid UTF-8 text."""
    try:
        name.encode("utf-8")
    except UnicodeError:
        return False
    return True


def build_inventory(
    listing: pa.Table | pd.DataFrame,
    *,
    built_at: datetime,
    duration: float = 0.0,
    unrecognised: Iterable[str] = (),
) -> Inventory:
    """Turn a listing (bucket, name, size, updated, crc32c, md5, generation) into an Inventory."""
    table = _listing_table(listing)
    table = table.filter(pc.invert(pc.ends_with(table["name"], "/")))  # folder placeholders
    parts = pc.split_pattern(table["name"], "/", max_splits=len(HIERARCHY_LEVELS))
    deep = pc.equal(pc.list_value_length(parts), len(HIERARCHY_LEVELS) + 1)
    rejected = [table.filter(pc.invert(deep))]
    table, parts = table.filter(deep), parts.filter(deep)

    coord = pc.binary_join(pc.list_slice(parts, 0, len(HIERARCHY_LEVELS)), "/")
    encoded = pc.dictionary_encode(coord).combine_chunks()
    run_of_row = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    coord_parts = pc.split_pattern(encoded.dictionary, "/")
    level_values = [pc.list_element(coord_parts, i) for i in range(len(HIERARCHY_LEVELS))]
    valid_run = np.ones(len(encoded.dictionary), dtype=bool)
    for values in level_values:
        valid_run &= _valid_parts(values)
    keep_row = valid_run[run_of_row] if len(run_of_row) else np.zeros(0, dtype=bool)
    rejected.append(table.filter(pa.array(~keep_row)))
    table, parts = table.filter(pa.array(keep_row)), parts.filter(pa.array(keep_row))
    new_id = np.cumsum(valid_run) - 1  # compact run ids over the valid coordinates
    run_of_row = new_id[run_of_row[keep_row]]
    level_values = [v.filter(pa.array(valid_run)) for v in level_values]

    categories, run_level_codes = _level_categories(level_values)
    run_order = np.lexsort(run_level_codes[::-1]) if run_level_codes[0].size else np.zeros(0, np.int64)
    run_rank = np.empty(len(run_order), dtype=np.int64)
    run_rank[run_order] = np.arange(len(run_order))

    rel = pc.list_element(parts, len(HIERARCHY_LEVELS))
    bucket_code = _bucket_codes(table["bucket"])
    order_table = pa.table({"run": run_rank[run_of_row], "bucket": bucket_code, "rel": rel})
    order = pc.sort_indices(
        order_table, sort_keys=[("run", "ascending"), ("bucket", "ascending"), ("rel", "ascending")]
    )
    table = table.take(order)
    rel = rel.take(order)
    row_run = run_rank[run_of_row][order.to_numpy()]
    bucket_code = bucket_code[order.to_numpy()]
    kind = _classify(rel, bucket_code, row_run)

    sorted_codes = [c[run_order] for c in run_level_codes]
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for level, cats, codes in zip(HIERARCHY_LEVELS, categories, sorted_codes, strict=True):
        columns[level] = pa.DictionaryArray.from_arrays(
            pa.array(codes[row_run].astype(np.int32)), pa.array(cats, type=pa.string())
        )
    columns["rel_name"] = rel
    for name in ("size", "updated", "crc32c", "md5", "generation"):
        columns[name] = table[name]
    columns["bucket"] = pa.DictionaryArray.from_arrays(pa.array(bucket_code.astype(np.int8)), pa.array(BUCKETS))
    columns["kind"] = pa.DictionaryArray.from_arrays(pa.array(kind), pa.array(KINDS))
    objects = _frame_from_table(pa.table(columns))

    bad = pa.concat_tables(rejected)
    extra = list(unrecognised)
    return assemble_inventory(
        objects,
        built_at=built_at,
        duration=duration,
        unrecognised=(extra + _sample_names(bad))[:UNRECOGNISED_SAMPLE],
        unrecognised_count=len(extra) + bad.num_rows,
    )


def _level_categories(level_values: list[pa.Array]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return per level the categories in display order and each run's code into them."""
    categories: list[np.ndarray] = []
    run_level_codes: list[np.ndarray] = []
    for level, values in zip(HIERARCHY_LEVELS, level_values, strict=True):
        codes, uniques = pd.factorize(np.asarray(values.to_numpy(zero_copy_only=False), dtype=object))
        uniques = np.asarray(uniques, dtype=object)
        if level == "timestamp":
            order = timestamp_order(uniques, parse_unique_timestamps(uniques))
        else:
            order = np.argsort(uniques, kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        categories.append(uniques[order])
        run_level_codes.append(rank[codes])
    return categories, run_level_codes


def _sample_names(rejected: pa.Table) -> list[str]:
    """Return the first rejected objects as 'bucket:name'."""
    head = rejected.slice(0, UNRECOGNISED_SAMPLE)
    pairs = zip(head["bucket"].to_pylist(), head["name"].to_pylist(), strict=True)
    return [f"{bucket}:{name}" for bucket, name in pairs]


def _listing_table(listing: pa.Table | pd.DataFrame) -> pa.Table:
    """Return listing as an arrow table with the listing schema."""
    if isinstance(listing, pd.DataFrame):
        listing = pa.Table.from_pandas(listing[list(_LISTING_SCHEMA.names)], preserve_index=False)
    return listing.select(list(_LISTING_SCHEMA.names)).cast(_LISTING_SCHEMA)


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Return a boolean numpy array, nulls as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _valid_parts(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Vectorised validate_part: True where the value is a safe single path segment."""
    length = pc.utf8_length(values)
    ok = pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, MAX_PART_LENGTH))
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(values, _BAD_PART_RE)))
    ok = pc.and_(ok, pc.not_equal(values, "."))
    return _bools(ok)


def _bucket_codes(buckets: pa.ChunkedArray) -> np.ndarray:
    """Map bucket labels to codes, refusing unknown labels."""
    is_ml = _bools(pc.equal(buckets, "ml"))
    is_raw = _bools(pc.equal(buckets, "raw"))
    if not (is_ml | is_raw).all():
        raise ValueError("listing bucket labels must be 'raw' or 'ml'")
    return is_ml.astype(np.int8)


def _classify(rel: pa.ChunkedArray, bucket: np.ndarray, run: np.ndarray) -> np.ndarray:
    """Return kind codes: bags (raw), samples and their sidecar labels (ml), in-flight, other."""
    lower = pc.utf8_lower(rel)
    is_ml = bucket == ML
    inflight = _bools(pc.match_substring_regex(lower, _INFLIGHT_RE))
    bag = ~is_ml & ~inflight & _bools(pc.match_substring_regex(lower, _BAG_RE))
    sample = is_ml & ~inflight & _bools(pc.match_substring_regex(lower, _SAMPLE_RE))
    label_ext = is_ml & ~inflight & _bools(pc.match_substring_regex(lower, _LABEL_RE))
    label = np.zeros(len(bucket), dtype=bool)
    if sample.any() and label_ext.any():
        s_idx, l_idx = np.flatnonzero(sample), np.flatnonzero(label_ext)
        n_s = len(s_idx)
        names = rel.take(np.concatenate([s_idx, l_idx])).combine_chunks()
        base = pc.replace_substring_regex(names, r"(?s)^.*/", "")
        stem = pc.replace_substring_regex(base, r"\.[^.]*$", "")
        # A sidecar matches a sample of the same run by stem ('a.json' for 'a.jpg') or by
        # full name ('a.jpg.json'); strings become integer keys so matching is one hash lookup.
        keys = pa.concat_arrays([stem.slice(0, n_s), base.slice(0, n_s), stem.slice(n_s)])
        codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        width = int(codes.max()) + 1
        sample_keys = np.concatenate([run[s_idx], run[s_idx]]) * width + codes[: 2 * n_s]
        label_keys = run[l_idx] * width + codes[2 * n_s :]
        label[l_idx[pd.Series(label_keys).isin(sample_keys).to_numpy()]] = True
    kind = np.full(len(bucket), OTHER, dtype=np.int8)
    kind[bag] = BAG
    kind[sample] = SAMPLE
    kind[label] = LABEL
    kind[inflight] = INFLIGHT
    return kind


def _frame_from_table(table: pa.Table) -> pd.DataFrame:
    """Convert an objects arrow table (built or read back) into the objects frame."""
    missing = [name for name in OBJECT_COLUMNS if name not in table.column_names]
    if missing:
        raise SnapshotError(f"missing columns {', '.join(missing)}")
    data: dict[str, Any] = {}
    for level in HIERARCHY_LEVELS:
        data[level] = _categorical(table[level], None)
    data["rel_name"] = _strings(table["rel_name"])
    data["size"] = table["size"].cast(pa.int64()).to_numpy()
    data["updated"] = pd.DatetimeTZDtype("us", "UTC").__from_arrow__(
        table["updated"].cast(pa.timestamp("us", tz="UTC"))
    )
    data["crc32c"] = _strings(table["crc32c"])
    data["md5"] = _strings(table["md5"])
    data["generation"] = pd.Int64Dtype().__from_arrow__(table["generation"].cast(pa.int64()))
    data["bucket"] = _categorical(table["bucket"], BUCKETS)
    data["kind"] = _categorical(table["kind"], KINDS)
    for level in HIERARCHY_LEVELS:
        if (data[level].codes < 0).any():
            raise SnapshotError(f"null {level} values")
    if data["rel_name"].isna().any():
        raise SnapshotError("null rel_name values")
    return pd.DataFrame(data, copy=False)


def _categorical(column: pa.ChunkedArray, categories: tuple[str, ...] | None) -> pd.Categorical:
    """Return column as a Categorical, with exactly categories when given."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    result = column.to_pandas().array
    if categories is not None:
        result = result.set_categories(list(categories))
        if (result.codes < 0).any():
            raise SnapshotError(f"values outside {categories}")
    return result


def _strings(column: pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """Return column as a pandas str array backed by arrow (no Python objects)."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(pa.string())
    return pd.array(column, dtype="str")


# -- snapshot -----------------------------------------------------------------------------------


def write_snapshot(inventory: Inventory, path: Path) -> None:
    """Write the objects table to path atomically (temp file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(inventory.objects[list(OBJECT_COLUMNS)], preserve_index=False)
    meta = {
        "built_at": inventory.built_at.isoformat(),
        "duration": inventory.duration,
        "unrecognised": inventory.unrecognised,
        "unrecognised_count": inventory.unrecognised_count,
    }
    table = table.replace_schema_metadata(
        {SCHEMA_KEY: str(SCHEMA_VERSION).encode(), META_KEY: json.dumps(meta).encode()}
    )
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            pq.write_table(table, out, compression="zstd", row_group_size=max(1, len(table)))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_snapshot(path: Path) -> Inventory:
    """Read a snapshot; raise FileNotFoundError if absent and SnapshotError if unusable."""
    if not path.exists():
        raise FileNotFoundError(path)
    try:
        # One open file for the version check and the data, so a concurrent replace cannot mix
        # them. Memory-mapping without pre-buffering keeps compressed pages out of the heap.
        with pq.ParquetFile(path, memory_map=True, pre_buffer=False) as parquet:
            meta = parquet.schema_arrow.metadata or {}
            version = meta.get(SCHEMA_KEY)
            if version != str(SCHEMA_VERSION).encode():
                raise SnapshotError(f"schema version {version!r}, expected {SCHEMA_VERSION}")
            info = json.loads(meta[META_KEY])
            frame = _frame_from_table(parquet.read(columns=list(OBJECT_COLUMNS)))
        inventory = assemble_inventory(
            frame,
            built_at=datetime.fromisoformat(info["built_at"]),
            duration=float(info["duration"]),
            unrecognised=[str(n) for n in info["unrecognised"]],
            unrecognised_count=int(info["unrecognised_count"]),
        )
    except SnapshotError:
        raise
    except Exception as exc:  # any failure to parse means the file is unusable, not a crash
        raise SnapshotError(f"{type(exc).__name__}: {_one_line(str(exc))}") from exc
    release_memory()
    return inventory


def release_memory() -> None:
    """Hand freed buffers back to the OS so a worker's RSS reflects the data it keeps."""
    # Decoding 1M rows allocates and frees ~150 MB; arrow's pool and glibc both keep freed
    # pages by default, which would otherwise stay charged to every gunicorn worker.
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """Return (inode, mtime_ns, size) of path, or None when it is missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _one_line(text: str) -> str:
    """Return the first non-empty line of text."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:300]


# -- the service --------------------------------------------------------------------------------


class CloudInventoryService:
    """Serve the bucket inventory from memory, a parquet snapshot and, when stale, a fresh listing."""

    def __init__(
        self,
        raw_bucket: Bucket,
        ml_bucket: Bucket,
        snapshot_path: Path,
        shared: BaseCache,
        *,
        clock: Callable[[], float] = time.time,
        retry_interval: float = 60.0,
        refresh_lock_timeout: int = 1800,
        refresh_on_query: bool = True,
    ) -> None:
        # A web app passes refresh_on_query=False: a query must never wait minutes for a listing,
        # so refreshes run from the CLI or a background job instead.
        self._refresh_on_query = refresh_on_query
        self._buckets = {"raw": raw_bucket, "ml": ml_bucket}
        self._path = Path(snapshot_path)
        self._shared = shared
        self._clock = clock
        self._retry_interval = retry_interval
        self._lock_timeout = refresh_lock_timeout
        # _lock guards the in-memory copy and is held only briefly (a snapshot read at most);
        # _refresh_lock serialises listings, which take minutes, so queries never wait on one.
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._inventory: Inventory | None = None
        self._loaded = False
        self._generation: int | None = None
        self._file_id: tuple[int, int, int] | None = None
        self._stale: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._snapshot_unusable = False

    # -- lifecycle ------------------------------------------------------------------------------

    def load(self) -> Inventory | None:
        """Load the snapshot into memory (no listing); return it, or None when there is none."""
        return self._sync()

    def get_full_inventory(self, force_refresh: bool = False, build_if_missing: bool = True) -> Inventory | None:
        """Return the inventory, refreshing when forced or marked stale, building when missing."""
        if force_refresh:
            return self.refresh_inventory()
        inventory = self._sync()
        if inventory is None:
            if not build_if_missing:
                return None
            with self._refresh_lock:
                inventory = self._sync()
                return inventory if inventory is not None else self._refresh(None)
        if self._refresh_due():
            try:
                refreshed = self.refresh_if_idle()
            except StorageError as exc:
                log.warning("inventory_refresh_failed_serving_snapshot", error=str(exc))
            else:
                return refreshed if refreshed is not None else inventory
        return inventory

    def refresh_inventory(self, progress: Progress | None = None) -> Inventory:
        """List both buckets, rebuild, write the snapshot and bump the shared generation."""
        token = self._take_refresh_lock()
        try:
            with self._refresh_lock:
                return self._refresh(progress)
        finally:
            self._release_refresh_lock(token)

    def version(self) -> tuple[Any, str | None]:
        """Return what identifies the in-memory inventory (shared generation, build time): a cache key part."""
        inventory = self._sync()
        return self._generation, inventory.built_at.isoformat() if inventory else None

    def mark_stale(self, reason: str) -> None:
        """Record that the buckets changed so the next get_full_inventory() lists them again."""
        now = self._clock()
        stale = self._shared.get(STALE_KEY) or {"since": now}
        stale.update(reason=reason, marked_at=now)
        self._shared.set(STALE_KEY, stale, timeout=0)
        self._bump_generation()
        log.info("inventory_marked_stale", reason=reason)

    def get_cache_info(self) -> dict[str, Any]:
        """Describe the in-memory inventory and the shared refresh state (never lists buckets)."""
        inventory = self._sync()
        stale = self._shared.get(STALE_KEY)
        error = self._shared.get(ERROR_KEY)
        info: dict[str, Any] = {
            "available": inventory is not None,
            "snapshot_path": str(self._path),
            "generation": self._shared.get(GENERATION_KEY),
            "local_generation": self._generation,
            "stale_since": _iso(stale.get("since")) if stale else None,
            "stale_reason": stale.get("reason") if stale else None,
            "last_error": error.get("message") if error else None,
            "last_error_at": _iso(error.get("at")) if error else None,
        }
        if inventory is None:
            info.update(
                built_at=None,
                age_seconds=None,
                objects={b: 0 for b in BUCKETS},
                bytes={b: 0 for b in BUCKETS},
                kinds={b: dict.fromkeys(KINDS, 0) for b in BUCKETS},
                runs=0,
                last_refresh_duration=None,
                unrecognised_count=0,
                unrecognised_sample=[],
            )
            return info
        info.update(
            built_at=inventory.built_at.isoformat(),
            age_seconds=max(0.0, self._clock() - inventory.built_at.timestamp()),
            objects={b: inventory.counts[b]["objects"] for b in BUCKETS},
            bytes={b: inventory.counts[b]["bytes"] for b in BUCKETS},
            kinds={b: {k: inventory.counts[b][k] for k in KINDS} for b in BUCKETS},
            runs=inventory.run_count,
            last_refresh_duration=inventory.duration,
            unrecognised_count=inventory.unrecognised_count,
            unrecognised_sample=list(inventory.unrecognised),
        )
        return info

    # -- queries --------------------------------------------------------------------------------

    def get_hierarchy_level(self, level: str, parent_path: tuple[str, ...] = ()) -> list[str]:
        """Return the options at level under parent_path (raw and ml combined), in display order."""
        if level not in HIERARCHY_LEVELS:
            raise ValueError(f"unknown hierarchy level {level!r}; expected one of {', '.join(HIERARCHY_LEVELS)}")
        depth = HIERARCHY_LEVELS.index(level)
        parent = tuple(parent_path)
        if len(parent) > depth:
            raise ValueError(f"parent_path for {level} has {len(parent)} parts, at most {depth} allowed")
        for name, value in zip(HIERARCHY_LEVELS, parent, strict=False):
            validate_part(name, value)
        inventory = self._current()
        return inventory.index.children(depth, parent) if inventory else []

    def path_exists(self, path: tuple[str, ...], bucket_type: str = "raw") -> bool:
        """Tell whether any live object of bucket_type lies under path (levels, then names below)."""
        if bucket_type not in BUCKETS:
            raise ValueError(f"bucket_type must be 'raw' or 'ml', got {bucket_type!r}")
        path = tuple(path)
        levels = path[: len(HIERARCHY_LEVELS)]
        for name, value in zip(HIERARCHY_LEVELS, levels, strict=False):
            validate_part(name, value)
        inventory = self._current()
        if inventory is None:
            return False
        index = inventory.index
        lo, hi = index.span(levels)
        count = index.columns[f"{bucket_type}_objects"][lo:hi]
        if len(path) <= len(HIERARCHY_LEVELS):
            return bool(count.any())
        if hi - lo != 1 or not count[0]:
            return False
        start, stop = self._bucket_slice(index, lo, bucket_type)
        rel = "/".join(path[len(HIERARCHY_LEVELS) :])
        for name, kind in zip(index.rel.slice(start, stop - start).to_pylist(), index.kind[start:stop], strict=True):
            if kind != INFLIGHT and (name == rel or name.startswith(rel + "/")):
                return True
        return False

    def get_raw_bags_info(self, coord: RunCoordinate | str) -> CloudRawStatus:
        """Return the run's bags in the raw bucket: names below the run and their total size."""
        coord = _coordinate(coord)
        inventory = self._current()
        row = inventory.index.run_row(coord) if inventory else None
        if inventory is None or row is None:
            return CloudRawStatus(exists=False, bag_count=0, bag_names=[], total_size=0)
        index = inventory.index
        start, stop = self._bucket_slice(index, row, "raw")
        bags = np.flatnonzero(index.kind[start:stop] == BAG)
        names = index.rel.slice(start, stop - start).take(pa.array(bags)).to_pylist()
        return CloudRawStatus(
            exists=bool(index.columns["raw_objects"][row]),
            bag_count=len(names),
            bag_names=names,
            total_size=int(index.size[start:stop][bags].sum()),
        )

    def get_raw_objects(self, coord: RunCoordinate | str) -> list[ObjectInfo]:
        """Return every live raw object of the run (bags, metadata.yaml, ...) with full names."""
        return self._objects_of(_coordinate(coord), "raw")

    def get_ml_samples_info(self, coord: RunCoordinate | str) -> dict[str, Any]:
        """Return sample_count, label_count, total_size (samples + labels) and sample_names."""
        coord = _coordinate(coord)
        inventory = self._current()
        row = inventory.index.run_row(coord) if inventory else None
        if inventory is None or row is None:
            return {"sample_count": 0, "label_count": 0, "total_size": 0, "sample_names": []}
        index = inventory.index
        start, stop = self._bucket_slice(index, row, "ml")
        samples = np.flatnonzero(index.kind[start:stop] == SAMPLE)
        return {
            "sample_count": int(index.columns["ml_samples"][row]),
            "label_count": int(index.columns["ml_labels"][row]),
            "total_size": int(index.columns["ml_bytes"][row]),
            "sample_names": index.rel.slice(start, stop - start).take(pa.array(samples)).to_pylist(),
        }

    def get_coordinate_cloud_state(self, coord: RunCoordinate | str) -> dict[str, Any]:
        """Summarise one run in both buckets plus the inventory's age and staleness."""
        coord = _coordinate(coord)
        raw = self.get_raw_bags_info(coord)
        inventory = self._current()
        row = inventory.index.run_row(coord) if inventory else None
        columns = inventory.index.columns if inventory else {}
        return {
            "coordinate": coord.to_path_str(),
            "in_raw": raw.exists,
            "in_ml": bool(row is not None and columns["ml_objects"][row]),
            "raw": raw.to_dict(),
            "ml": {
                "sample_count": int(columns["ml_samples"][row]) if row is not None else 0,
                "label_count": int(columns["ml_labels"][row]) if row is not None else 0,
                "total_size": int(columns["ml_bytes"][row]) if row is not None else 0,
            },
            "inventory_built_at": inventory.built_at.isoformat() if inventory else None,
            "stale": self._stale is not None,
        }

    def get_temporal_data(self, filters: Mapping[str, str | None] | None = None) -> pd.DataFrame:
        """Return one row per run under filters with bag and sample counts, in timestamp order."""
        return self._runs_frame(filters, TEMPORAL_COLUMNS)

    def select_runs(self, filters: Mapping[str, str | None] | None = None) -> RunSelection:
        """Return the runs under filters as arrays for coverage arithmetic (empty without an inventory)."""
        clean = _clean_filters(filters)
        inventory = self._current()
        if inventory is None:
            return RunSelection.empty()
        return inventory.index.selection(clean)

    def get_runs(self, filters: Mapping[str, str | None] | None = None) -> pd.DataFrame:
        """Return one row per run under filters with every per-run aggregate, in timestamp order."""
        return self._runs_frame(filters, RUN_COLUMNS)

    # -- internals ------------------------------------------------------------------------------

    def _runs_frame(self, filters: Mapping[str, str | None] | None, columns: tuple[str, ...]) -> pd.DataFrame:
        """Select runs by filters and return the requested columns."""
        clean = _clean_filters(filters)
        inventory = self._current()
        if inventory is None:
            return pd.DataFrame({name: pd.Series(dtype=_empty_dtype(name)) for name in columns})
        index = inventory.index
        return index.frame(index.rows(clean), columns)

    def _objects_of(self, coord: RunCoordinate, bucket_type: str) -> list[ObjectInfo]:
        """Rebuild ObjectInfo for the live objects of one run in one bucket."""
        inventory = self._current()
        row = inventory.index.run_row(coord) if inventory else None
        if inventory is None or row is None:
            return []
        start, stop = self._bucket_slice(inventory.index, row, bucket_type)
        chunk = inventory.objects.iloc[start:stop]
        chunk = chunk[chunk["kind"].cat.codes.to_numpy() != INFLIGHT]
        prefix = coord.to_path_str() + "/"
        result = []
        for rel, size, updated, crc, md5, generation in zip(
            chunk["rel_name"].tolist(),
            chunk["size"].tolist(),
            chunk["updated"].tolist(),
            chunk["crc32c"].tolist(),
            chunk["md5"].tolist(),
            chunk["generation"].tolist(),
            strict=True,
        ):
            result.append(
                ObjectInfo(
                    name=prefix + rel,
                    size=int(size),
                    updated=None if pd.isna(updated) else updated.to_pydatetime().astimezone(UTC),
                    crc32c=None if pd.isna(crc) else crc,
                    md5=None if pd.isna(md5) else md5,
                    generation=None if pd.isna(generation) else int(generation),
                )
            )
        return result

    @staticmethod
    def _bucket_slice(index: RunIndex, row: int, bucket_type: str) -> tuple[int, int]:
        """Return the object rows [start, stop) of one run in one bucket."""
        cols = index.columns
        if bucket_type == "raw":
            return int(cols["obj_start"][row]), int(cols["raw_stop"][row])
        return int(cols["raw_stop"][row]), int(cols["obj_stop"][row])

    def _current(self) -> Inventory | None:
        """Return the inventory for a query (building or refreshing it only if queries may)."""
        if not self._refresh_on_query:
            return self._sync()
        return self.get_full_inventory()

    def _sync(self) -> Inventory | None:
        """Return the in-memory copy, reloading the snapshot when the shared generation moved."""
        # None == None is safe: any later bump stores a number, so a reload cannot be missed.
        generation = self._shared.get(GENERATION_KEY)
        if self._loaded and generation == self._generation:
            return self._inventory
        with self._lock:
            generation = self._shared.get(GENERATION_KEY)
            if self._loaded and generation == self._generation:
                return self._inventory
            self._stale = self._shared.get(STALE_KEY)
            self._error = self._shared.get(ERROR_KEY)
            file_id = _file_identity(self._path)
            if not self._loaded or (file_id is not None and file_id != self._file_id):
                loaded = self._read()
                if loaded is not None or self._inventory is None:
                    self._inventory = loaded
                self._file_id = file_id
            self._generation = generation
            self._loaded = True
            return self._inventory

    def _read(self) -> Inventory | None:
        """Read the snapshot; log and return None when it is missing or unusable."""
        try:
            inventory = read_snapshot(self._path)
        except FileNotFoundError:
            return None
        except SnapshotError as exc:
            self._snapshot_unusable = True
            log.warning("inventory_snapshot_unusable", path=str(self._path), error=str(exc), action="rebuild")
            return None
        self._snapshot_unusable = False
        log.info("inventory_snapshot_loaded", path=str(self._path), runs=inventory.run_count)
        return inventory

    def _refresh_due(self) -> bool:
        """Tell whether a stale mark or failed refresh should trigger a listing now."""
        if self._stale is None and not self._snapshot_unusable:
            return False
        if self._error is None:
            return True
        marked_after_error = ((self._stale or {}).get("marked_at") or 0) > self._error.get("at", 0)
        return marked_after_error or self._clock() - self._error.get("at", 0) >= self._retry_interval

    def refresh_if_idle(self, progress: Progress | None = None) -> Inventory | None:
        """Refresh unless another worker holds the refresh lock (then return None)."""
        token = self._take_refresh_lock()
        if token is None:
            return None
        try:
            with self._refresh_lock:
                return self._refresh(progress)
        finally:
            self._release_refresh_lock(token)

    def _take_refresh_lock(self) -> str | None:
        """Try to take the cross-process refresh lock; return its token or None."""
        token = f"{os.getpid()}:{id(self)}:{time.monotonic_ns()}"
        return token if self._shared.add(REFRESH_LOCK_KEY, token, timeout=self._lock_timeout) else None

    def _release_refresh_lock(self, token: str | None) -> None:
        """Release the refresh lock if we still hold it."""
        if token is not None and self._shared.get(REFRESH_LOCK_KEY) == token:
            self._shared.delete(REFRESH_LOCK_KEY)

    def _refresh(self, progress: Progress | None) -> Inventory:
        """List, build, snapshot and publish; on a storage failure record it and re-raise.

        The caller holds _refresh_lock; _lock is taken only to swap the in-memory copy.
        """
        started = self._clock()
        t0 = time.perf_counter()
        tables, unencodable = [], []
        for label, bucket in self._buckets.items():
            try:
                table, bad = list_bucket(label, bucket, progress)
            except StorageError as exc:
                detail = _one_line(str(exc)) or type(exc).__name__
                message = f"cannot list the {label} bucket ({bucket.url}): {detail}"
                with self._lock:
                    self._record_failure(message)
                raise _same_kind(exc, message) from exc
            tables.append(table)
            unencodable.extend(bad)
        if progress is not None:
            progress("building inventory", sum(t.num_rows for t in tables))
        listing = pa.concat_tables(tables)
        del tables
        built_at = datetime.fromtimestamp(self._clock(), tz=UTC)
        inventory = build_inventory(listing, built_at=built_at, unrecognised=unencodable)
        inventory = dataclasses.replace(inventory, duration=time.perf_counter() - t0)
        del listing
        release_memory()
        if progress is not None:
            progress("writing snapshot", len(inventory.objects))
        write_snapshot(inventory, self._path)
        with self._lock:
            # Swap the copy in before publishing the generation so no reader pairs new with old.
            self._inventory = inventory
            self._file_id = _file_identity(self._path)
            self._loaded = True
            self._snapshot_unusable = False
            self._record_success(started)
        log.info(
            "inventory_refreshed",
            objects=len(inventory.objects),
            runs=inventory.run_count,
            unrecognised=inventory.unrecognised_count,
            seconds=round(inventory.duration, 3),
        )
        if progress is not None:
            progress("done", len(inventory.objects))
        return inventory

    def _record_failure(self, message: str) -> None:
        """Mark the data stale since the first failure and keep the error for everyone."""
        now = self._clock()
        stale = self._shared.get(STALE_KEY) or {"since": now, "reason": f"refresh failed: {message}"}
        error = {"at": now, "message": message}
        self._shared.set(STALE_KEY, stale, timeout=0)
        self._shared.set(ERROR_KEY, error, timeout=0)
        self._stale, self._error = stale, error
        self._bump_generation(adopt=True)
        log.warning("inventory_refresh_failed", error=message, stale_since=_iso(stale["since"]))

    def _record_success(self, started: float) -> None:
        """Clear staleness unless someone marked the data stale after this listing began."""
        stale = self._shared.get(STALE_KEY)
        if stale and (stale.get("marked_at") or 0) > started:
            stale = {**stale, "since": stale["marked_at"]}
            self._shared.set(STALE_KEY, stale, timeout=0)
        else:
            self._shared.delete(STALE_KEY)
            stale = None
        self._shared.delete(ERROR_KEY)
        self._stale, self._error = stale, None
        self._bump_generation(adopt=True)

    def _bump_generation(self, *, adopt: bool = False) -> int:
        """Raise the shared generation; adopt it locally when our copy already reflects the change."""
        old = self._shared.get(GENERATION_KEY)
        # Wall-clock milliseconds keep the number rising even if the cache lost the key.
        new = max((old or 0) + 1, int(self._clock() * 1000))
        self._shared.set(GENERATION_KEY, new, timeout=0)
        if adopt and (old == self._generation or old is None):
            self._generation = new
        return new


def _same_kind(exc: StorageError, message: str) -> StorageError:
    """Return a StorageError of exc's class carrying message."""
    try:
        return type(exc)(message)
    except Exception:  # a subclass with a different constructor
        return StorageError(message)


def _coordinate(coord: RunCoordinate | str) -> RunCoordinate:
    """Accept a RunCoordinate or its path string."""
    return coord if isinstance(coord, RunCoordinate) else RunCoordinate.from_path(coord)


def _clean_filters(filters: Mapping[str, str | None] | None) -> dict[str, str]:
    """Validate filters; drop empty levels; refuse unknown keys and unsafe values."""
    clean: dict[str, str] = {}
    for key, value in (filters or {}).items():
        if key not in HIERARCHY_LEVELS:
            raise ValueError(f"unknown filter {key!r}; expected one of {', '.join(FILTER_LEVELS)}")
        if value is None or value == "":
            continue
        clean[key] = validate_part(key, value)
    return clean


def _empty_dtype(name: str) -> str:
    """Return the dtype of a result column for an empty frame."""
    if name in HIERARCHY_LEVELS:
        return "str"
    return DATETIME_DTYPE if name == "ts_parsed" else "int64"


def _iso(epoch: float | None) -> str | None:
    """Format epoch seconds as an ISO UTC string."""
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC).isoformat()
