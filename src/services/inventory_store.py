"""The inventory on disk: a streaming build into Arrow IPC segments, memory-mapped snapshots and subtree merges.

Layout under the snapshot pointer's directory (the pointer is a small JSON file naming the current snapshot):

    snapshot.json               {"schema": 2, "snapshot": "snap-…"}  replaced atomically to publish
    snap-…/runs.arrow           one row per run, sorted by coordinate: level codes (dictionary columns), counts,
                                and where the run's objects are (segment, [obj_start, raw_stop) raw, then ml)
    snap-…/unrecognised.arrow   every object that is not a run's ("bucket:name")
    snap-…/meta.json            build time, duration, segment file names
    segments/seg-….arrow        per-object detail, grouped by run; shared by every snapshot that references it

Everything is uncompressed Arrow IPC read through mmap, so all workers of a host share one copy in the page cache
and a worker touches only the pages of the runs it reads. A build spills listing chunks to disk and sorts one
partition of runs at a time, so its memory stays flat whatever the bucket size.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from src.models.coordinate import HIERARCHY_LEVELS, MAX_PART_LENGTH
from src.services.timestamps import DATETIME_DTYPE, parse_unique_timestamps, timestamp_order
from src.storage.base import Bucket

SCHEMA_VERSION = 2
PART_ROWS = 1_000_000  # objects sorted in memory at once during a build (about 150 MB)
BATCH_ROWS = 100_000  # listing rows per chunk
PROGRESS_EVERY = 10_000
BUCKETS: tuple[str, ...] = ("raw", "ml")
KINDS: tuple[str, ...] = ("bag", "sample", "label", "other", "inflight")
BAG, SAMPLE, LABEL, OTHER, INFLIGHT = range(len(KINDS))
RAW, ML = 0, 1
COUNT_COLUMNS: tuple[str, ...] = (
    "raw_bags",
    "raw_bytes",
    "raw_objects",
    "ml_samples",
    "ml_labels",
    "ml_bytes",
    "ml_objects",
)
# Kept per run so bucket-wide counts are sums over runs, and a subtree merge needs no object scan.
EXTRA_COLUMNS: tuple[str, ...] = ("raw_other", "raw_inflight", "ml_other", "ml_inflight", "raw_all", "ml_all")
LOCATION_COLUMNS: tuple[str, ...] = ("seg", "obj_start", "raw_stop", "obj_stop")
NUMERIC_COLUMNS: tuple[str, ...] = (*COUNT_COLUMNS, *EXTRA_COLUMNS, *LOCATION_COLUMNS)
TS = len(HIERARCHY_LEVELS) - 1

# Suffix rules run on the lower-cased name below the timestamp (RE2 syntax).
_INFLIGHT_RE = r"\.(active|tmp)$"
_BAG_RE = r"\.(bag|mcap|db3)$"
_SAMPLE_RE = r"\.(jpe?g|png)$"
_LABEL_RE = r"\.(json|txt)$"
# What validate_part rejects, as one RE2 pattern: '..', '/', '\' and Unicode Cc characters.
_BAD_PART_RE = r"\.\.|[\x00-\x1f\x7f-\x9f\\/]"

LISTING_SCHEMA = pa.schema(
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
DETAIL = ("size", "updated", "crc32c", "md5", "generation")
SEGMENT_SCHEMA = pa.schema(
    [
        ("rel_name", pa.string()),
        *(LISTING_SCHEMA.field(name) for name in DETAIL),
        ("bucket", pa.int8()),
        ("kind", pa.int8()),
    ]
)
_SPILL_SCHEMA = pa.schema(
    [
        ("coord", pa.string()),
        ("bucket", pa.int8()),
        ("rel_name", pa.string()),
        *(LISTING_SCHEMA.field(name) for name in DETAIL),
    ]
)

Progress = Callable[[str, int], None]


class SnapshotError(ValueError):
    """The snapshot cannot be used (corrupt, foreign or from another schema version)."""


# -- runs -----------------------------------------------------------------------------------------


@dataclass
class RunsData:
    """Runs in coordinate order: per level the categories (display order) and each run's code, plus numbers."""

    cats: list[np.ndarray]
    codes: list[np.ndarray]
    ts_parsed: np.ndarray
    numeric: dict[str, np.ndarray]
    arrow_cats: list[pa.Array] | None = None  # the same categories as arrow strings, when read from a file

    def __len__(self) -> int:
        return len(self.ts_parsed)

    @classmethod
    def empty(cls) -> RunsData:
        return cls(
            cats=[np.zeros(0, dtype=object) for _ in HIERARCHY_LEVELS],
            codes=[np.zeros(0, dtype=np.int32) for _ in HIERARCHY_LEVELS],
            ts_parsed=np.zeros(0, dtype=DATETIME_DTYPE),
            numeric={name: np.zeros(0, dtype=_numeric_dtype(name)) for name in NUMERIC_COLUMNS},
        )


def _numeric_dtype(name: str) -> type:
    return np.int32 if name == "seg" else np.int64


def level_categories(level_values: list[pa.Array | np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return per level the categories in display order and each input's code into them."""
    categories: list[np.ndarray] = []
    codes_out: list[np.ndarray] = []
    for depth, values in enumerate(level_values):
        array = values if isinstance(values, np.ndarray) else values.to_numpy(zero_copy_only=False)
        codes, uniques = pd.factorize(np.asarray(array, dtype=object))
        uniques = np.asarray(uniques, dtype=object)
        if depth == TS:
            order = timestamp_order(uniques, parse_unique_timestamps(uniques))
        else:
            order = np.argsort(uniques, kind="stable")
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        categories.append(uniques[order])
        codes_out.append(rank[codes] if len(codes) else np.zeros(0, dtype=np.int32))
    return categories, codes_out


def _ts_per_category(cats: np.ndarray, codes: np.ndarray, ts_parsed: np.ndarray) -> np.ndarray:
    """Return each timestamp category's parsed time (NaT where no run uses it)."""
    times = np.full(len(cats), np.datetime64("NaT"), dtype=DATETIME_DTYPE)
    times[codes] = ts_parsed
    return times


def write_runs(path: Path, runs: RunsData) -> None:
    """Write runs as one Arrow IPC record batch (levels dictionary-encoded, times as int64 µs)."""
    columns: dict[str, pa.Array] = {}
    for level, cats, codes in zip(HIERARCHY_LEVELS, runs.cats, runs.codes, strict=True):
        columns[level] = pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32, copy=False)), pa.array(cats, type=pa.string())
        )
    columns["ts_parsed"] = pa.array(runs.ts_parsed.astype(DATETIME_DTYPE).view(np.int64))
    for name in NUMERIC_COLUMNS:
        columns[name] = pa.array(runs.numeric[name].astype(_numeric_dtype(name), copy=False))
    write_ipc(path, pa.table(columns))


def read_runs(table: pa.Table) -> RunsData:
    """Return zero-copy numpy views of a runs table (read-only when memory-mapped)."""
    cats, codes, arrow_cats = [], [], []
    batch = {name: _one_chunk(table.column(name)) for name in table.column_names}
    missing = [name for name in (*HIERARCHY_LEVELS, "ts_parsed", *NUMERIC_COLUMNS) if name not in batch]
    if missing:
        raise SnapshotError(f"runs table lacks {', '.join(missing)}")
    for level in HIERARCHY_LEVELS:
        column = batch[level]
        if not pa.types.is_dictionary(column.type):
            raise SnapshotError(f"runs column {level} is not dictionary-encoded")
        cats.append(np.asarray(column.dictionary.to_numpy(zero_copy_only=False), dtype=object))
        arrow_cats.append(column.dictionary)
        codes.append(_numpy(column.indices))
    numeric = {name: _numpy(batch[name]) for name in NUMERIC_COLUMNS}
    return RunsData(cats, codes, _numpy(batch["ts_parsed"]).view(DATETIME_DTYPE), numeric, arrow_cats)


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """Return a column as one array; a single chunk is returned as is (combine_chunks would copy it)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _numpy(array: pa.Array) -> np.ndarray:
    """Return a primitive arrow array as numpy without copying."""
    if array.null_count:
        raise SnapshotError("unexpected nulls in the runs table")
    return array.to_numpy(zero_copy_only=True)


# -- listing and preparing rows -----------------------------------------------------------------


def listing_batches(
    label: str, bucket: Bucket, prefix: str = "", progress: Progress | None = None
) -> Iterator[tuple[pa.RecordBatch, list[str]]]:
    """List bucket under prefix in chunks of BATCH_ROWS; yield (listing batch, names arrow cannot encode)."""
    rows: list[tuple[Any, ...]] = []
    total = 0
    for info in bucket.iter_objects(prefix):
        rows.append((info.name, info.size, info.updated, info.crc32c, info.md5, info.generation))
        total += 1
        if progress is not None and total % PROGRESS_EVERY == 0:
            progress(f"listing {label} bucket", total)
        if len(rows) >= BATCH_ROWS:
            yield _listing_batch(label, rows)
            rows = []
    if rows:
        yield _listing_batch(label, rows)
    if progress is not None:
        progress(f"listed {label} bucket", total)


def _listing_batch(label: str, rows: list[tuple[Any, ...]]) -> tuple[pa.RecordBatch, list[str]]:
    """Turn listed rows into a listing batch, setting aside names that are not valid UTF-8."""
    bad: list[str] = []
    names = [r[0] for r in rows]
    try:
        name_array = pa.array(names, type=pa.string())
    except (UnicodeError, pa.ArrowException):
        # Undecodable file names (surrogate escapes) cannot be keys; report, never crash.
        keep = [_encodable(n) for n in names]
        bad = [
            f"{label}:{r[0].encode('utf-8', 'backslashreplace').decode()}"
            for r, k in zip(rows, keep, strict=True)
            if not k
        ]
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        name_array = pa.array([r[0] for r in rows], type=pa.string())
    columns = [
        pa.array([label] * len(rows), type=pa.string()),
        name_array,
        *(pa.array([r[i] for r in rows], type=LISTING_SCHEMA.field(i + 1).type) for i in range(1, 6)),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=LISTING_SCHEMA), bad


def _encodable(name: str) -> bool:
    """Tell whether name is valid UTF-8 text."""
    try:
        name.encode("utf-8")
    except UnicodeError:
        return False
    return True


def as_listing(listing: pa.Table | pa.RecordBatch | pd.DataFrame) -> pa.Table:
    """Return listing as an arrow table with the listing schema."""
    if isinstance(listing, pd.DataFrame):
        listing = pa.Table.from_pandas(listing[list(LISTING_SCHEMA.names)], preserve_index=False)
    if isinstance(listing, pa.RecordBatch):
        listing = pa.Table.from_batches([listing])
    return listing.select(list(LISTING_SCHEMA.names)).cast(LISTING_SCHEMA)


def _prepare(table: pa.Table) -> tuple[pa.Table, pa.Array]:
    """Split names into run coordinate and name below it; return (valid rows, rejected 'bucket:name')."""
    table = table.filter(pc.invert(pc.ends_with(table["name"], "/")))  # folder placeholders
    levels = len(HIERARCHY_LEVELS)
    parts = pc.split_pattern(table["name"], "/", max_splits=levels)
    deep = pc.equal(pc.list_value_length(parts), levels + 1)
    rejected = [table.filter(pc.invert(deep))]
    table, parts = table.filter(deep), parts.filter(deep)
    coord = pc.binary_join(pc.list_slice(parts, 0, levels), "/")
    encoded = pc.dictionary_encode(coord)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    coord_parts = pc.split_pattern(encoded.dictionary, "/")
    valid_coord = np.ones(len(encoded.dictionary), dtype=bool)
    for depth in range(levels):
        valid_coord &= valid_parts(pc.list_element(coord_parts, depth))
    keep = valid_coord[encoded.indices.to_numpy(zero_copy_only=False)] if len(encoded) else np.zeros(0, bool)
    keep_arr = pa.array(keep, type=pa.bool_())
    rejected.append(table.filter(pc.invert(keep_arr)))
    kept = table.filter(keep_arr)
    valid = pa.table(
        {
            "coord": coord.filter(keep_arr),
            "bucket": pa.array(bucket_codes(kept["bucket"])),
            "rel_name": pc.list_element(parts.filter(keep_arr), levels),
            **{name: kept[name] for name in DETAIL},
        },
        schema=_SPILL_SCHEMA,
    )
    bad = pa.concat_tables(rejected)
    names = pc.binary_join_element_wise(bad["bucket"], bad["name"], ":")
    return valid, names.combine_chunks() if isinstance(names, pa.ChunkedArray) else names


def _bools(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Return a boolean numpy array, nulls as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def valid_parts(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Vectorised validate_part: True where the value is a safe single path segment."""
    length = pc.utf8_length(values)
    ok = pc.and_(pc.greater_equal(length, 1), pc.less_equal(length, MAX_PART_LENGTH))
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(values, _BAD_PART_RE)))
    ok = pc.and_(ok, pc.not_equal(values, "."))
    return _bools(ok)


def bucket_codes(buckets: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Map bucket labels to codes, refusing unknown labels."""
    is_ml = _bools(pc.equal(buckets, "ml"))
    is_raw = _bools(pc.equal(buckets, "raw"))
    if not (is_ml | is_raw).all():
        raise ValueError("listing bucket labels must be 'raw' or 'ml'")
    return is_ml.astype(np.int8)


def classify(rel: pa.Array | pa.ChunkedArray, bucket: np.ndarray, run: np.ndarray) -> np.ndarray:
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
        names = rel.take(pa.array(np.concatenate([s_idx, l_idx])))
        if isinstance(names, pa.ChunkedArray):
            names = names.combine_chunks()
        base = pc.replace_substring_regex(names, r"(?s)^.*/", "")
        stem = pc.replace_substring_regex(base, r"\.[^.]*$", "")
        # A sidecar matches a sample of the same run by stem ('a.json' for 'a.jpg') or by
        # full name ('a.jpg.json'); strings become integer keys so matching is one hash lookup.
        keys = pa.concat_arrays([stem.slice(0, n_s), base.slice(0, n_s), stem.slice(n_s)])
        codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        width = int(codes.max()) + 1
        run64 = run.astype(np.int64)
        sample_keys = np.concatenate([run64[s_idx], run64[s_idx]]) * width + codes[: 2 * n_s]
        label_keys = run64[l_idx] * width + codes[2 * n_s :]
        label[l_idx[pd.Series(label_keys).isin(sample_keys).to_numpy()]] = True
    kind = np.full(len(bucket), OTHER, dtype=np.int8)
    kind[bag] = BAG
    kind[sample] = SAMPLE
    kind[label] = LABEL
    kind[inflight] = INFLIGHT
    return kind


# -- the streaming build ------------------------------------------------------------------------


class SnapshotBuilder:
    """Build runs and one segment file from listing chunks without holding the listing in memory.

    Pass 1 (add): split names, spill valid rows to disk, count rows per run. finish(): order the runs,
    route spilled rows to partitions of about part_rows objects by run, then sort and classify one
    partition at a time, appending it to the segment and its runs to the runs table.
    """

    def __init__(self, workdir: Path, part_rows: int = PART_ROWS) -> None:
        self._dir = workdir
        self._dir.mkdir(parents=True, exist_ok=True)
        self._part_rows = max(1, part_rows)
        self._spill_path = self._dir / "listing.arrow"
        self._spill = ipc.new_file(str(self._spill_path), _SPILL_SCHEMA)
        self._counts: list[pa.Table] = []
        self._rejected: list[pa.Array] = []
        self.rows = 0

    def add(self, listing: pa.Table | pa.RecordBatch | pd.DataFrame, unencodable: Iterable[str] = ()) -> None:
        """Take one listing chunk."""
        bad = list(unencodable)
        if bad:
            self._rejected.append(pa.array(bad, type=pa.string()))
        valid, rejected = _prepare(as_listing(listing))
        if len(rejected):
            self._rejected.append(rejected)
        if valid.num_rows:
            self._spill.write_table(valid)
            self._counts.append(valid.group_by("coord").aggregate([("coord", "count")]))
            self.rows += valid.num_rows

    def rejected(self) -> pa.Array:
        """Return every rejected object as 'bucket:name', in listing order."""
        if not self._rejected:
            return pa.array([], type=pa.string())
        return pa.concat_arrays([a.cast(pa.string()) for a in self._rejected])

    def finish(self, segment_path: Path, segment: int = 0, progress: Progress | None = None) -> RunsData:
        """Sort, classify and write the objects to segment_path; return the runs (their seg set to segment)."""
        self._spill.close()
        if not self._counts:
            write_ipc(segment_path, SEGMENT_SCHEMA.empty_table())
            return RunsData.empty()
        per_coord = pa.concat_tables(self._counts).group_by("coord").aggregate([("coord_count", "sum")])
        self._counts = []
        coords = per_coord["coord"].combine_chunks()
        split = pc.split_pattern(coords, "/")
        cats, codes = level_categories([pc.list_element(split, d) for d in range(len(HIERARCHY_LEVELS))])
        order = np.lexsort(codes[::-1]) if len(coords) else np.zeros(0, np.int64)
        coords_sorted = coords.take(pa.array(order))
        sizes = per_coord["coord_count_sum"].to_numpy()[order]
        # A run never straddles partitions: each holds whole runs, about part_rows objects.
        part_of_rank = ((np.cumsum(sizes) - sizes) // self._part_rows).astype(np.int32)
        n_parts = int(part_of_rank[-1]) + 1 if len(part_of_rank) else 1
        if progress is not None:
            progress("sorting objects", self.rows)
        part_paths = self._partition(coords_sorted, part_of_rank, n_parts)
        numeric = self._sort_partitions(part_paths, segment_path, len(coords))
        numeric["seg"] = np.full(len(coords), segment, dtype=np.int32)
        ts_codes = codes[TS][order]
        ts_times = parse_unique_timestamps(cats[TS])
        return RunsData(
            cats=cats,
            codes=[c[order] for c in codes],
            ts_parsed=ts_times[ts_codes] if len(ts_codes) else np.zeros(0, DATETIME_DTYPE),
            numeric=numeric,
        )

    def _partition(self, coords_sorted: pa.Array, part_of_rank: np.ndarray, n_parts: int) -> list[Path]:
        """Replace each spilled row's coordinate by its run rank and route it to its partition file."""
        paths = [self._dir / f"part-{i:05d}.arrow" for i in range(n_parts)]
        part_schema = pa.schema([pa.field("run", pa.int32()), *list(_SPILL_SCHEMA)[1:]])
        writers = [ipc.new_file(str(p), part_schema) for p in paths]
        try:
            # Plain reads, not a mapping: mapped pages of a GB-sized spill file would all count in our RSS.
            with pa.OSFile(str(self._spill_path)) as source:
                reader = ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    batch = reader.get_batch(i)
                    rank = pc.index_in(batch.column("coord"), value_set=coords_sorted).to_numpy().astype(np.int32)
                    table = pa.table(
                        [pa.array(rank), *batch.columns[1:]],
                        schema=part_schema,
                    )
                    if n_parts == 1:
                        writers[0].write_table(table)
                        continue
                    part = part_of_rank[rank]
                    by_part = np.argsort(part, kind="stable")
                    bounds = np.searchsorted(part[by_part], np.arange(n_parts + 1))
                    table = table.take(pa.array(by_part))
                    for p in range(n_parts):
                        if bounds[p + 1] > bounds[p]:
                            writers[p].write_table(table.slice(bounds[p], bounds[p + 1] - bounds[p]))
        finally:
            for writer in writers:
                writer.close()
        self._spill_path.unlink(missing_ok=True)
        return paths

    def _sort_partitions(self, paths: list[Path], segment_path: Path, n_runs: int) -> dict[str, np.ndarray]:
        """Sort each partition by (run, bucket, name), classify it, append it to the segment; return per-run sums."""
        chunks: list[dict[str, np.ndarray]] = []
        offset = 0
        tmp = segment_path.with_name(f".{segment_path.name}.tmp")
        with ipc.new_file(str(tmp), SEGMENT_SCHEMA) as writer:
            for path in paths:
                with pa.OSFile(str(path)) as source:
                    table = ipc.open_file(source).read_all()
                    if not table.num_rows:
                        continue
                    order = pc.sort_indices(
                        table, sort_keys=[("run", "ascending"), ("bucket", "ascending"), ("rel_name", "ascending")]
                    )
                    table = table.take(order)
                    del order
                    run = table["run"].to_numpy()
                    bucket = table["bucket"].to_numpy()
                    kind = classify(table["rel_name"], bucket, run)
                    size = table["size"].to_numpy()
                    segment = pa.table(
                        {
                            "rel_name": table["rel_name"],
                            **{name: table[name] for name in DETAIL},
                            "bucket": table["bucket"],
                            "kind": pa.array(kind),
                        },
                        schema=SEGMENT_SCHEMA,
                    )
                    writer.write_table(segment, max_chunksize=BATCH_ROWS * 5)
                    chunks.append(run_sums(run, bucket, kind, size, offset))
                    offset += table.num_rows
                    del table, segment
                path.unlink(missing_ok=True)
        _fsync_file(tmp)
        os.replace(tmp, segment_path)
        numeric = {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}
        if len(numeric["obj_start"]) != n_runs:
            raise SnapshotError("partitioned runs do not add up")  # a bug, never data
        return numeric


def run_sums(run: np.ndarray, bucket: np.ndarray, kind: np.ndarray, size: np.ndarray, offset: int) -> dict:
    """Aggregate rows sorted by (run, bucket) into per-run counts and row offsets (shifted by offset)."""
    n = len(run)
    change = np.ones(n, dtype=bool)
    change[1:] = run[1:] != run[:-1]
    starts = np.flatnonzero(change)
    stops = np.append(starts[1:], n)
    is_ml = bucket == ML
    live = kind != INFLIGHT

    def per_run(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values.astype(np.int64, copy=False), starts) if n else np.zeros(0, np.int64)

    raw_bag = ~is_ml & (kind == BAG)
    ml_sample = is_ml & (kind == SAMPLE)
    ml_label = is_ml & (kind == LABEL)
    return {
        "raw_bags": per_run(raw_bag),
        "raw_bytes": per_run(np.where(raw_bag, size, 0)),
        "raw_objects": per_run(~is_ml & live),
        "ml_samples": per_run(ml_sample),
        "ml_labels": per_run(ml_label),
        "ml_bytes": per_run(np.where(ml_sample | ml_label, size, 0)),
        "ml_objects": per_run(is_ml & live),
        "raw_other": per_run(~is_ml & (kind == OTHER)),
        "raw_inflight": per_run(~is_ml & ~live),
        "ml_other": per_run(is_ml & (kind == OTHER)),
        "ml_inflight": per_run(is_ml & ~live),
        "raw_all": per_run(np.where(~is_ml, size, 0)),
        "ml_all": per_run(np.where(is_ml, size, 0)),
        "obj_start": (starts + offset).astype(np.int64),
        "raw_stop": (starts + per_run(~is_ml) + offset).astype(np.int64),
        "obj_stop": (stops + offset).astype(np.int64),
    }


# -- merging a refreshed subtree ----------------------------------------------------------------


def merge_runs(base: RunsData, drop: np.ndarray, new: RunsData, seg_map: np.ndarray) -> RunsData:
    """Return base without the dropped runs plus new, in coordinate order, with unused categories pruned.

    seg_map maps base segment indices to their index in the merged snapshot (new runs carry theirs already).
    """
    keep = np.flatnonzero(~drop)
    cats: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    ts_times = None
    for depth in range(len(HIERARCHY_LEVELS)):
        old_cats, new_cats = base.cats[depth], new.cats[depth]
        old_codes, new_codes = base.codes[depth][keep], new.codes[depth]
        old_arrow = base.arrow_cats[depth] if base.arrow_cats else pa.array(old_cats, type=pa.string())
        # Hash the few new values against the old categories in arrow (no Python dict of every timestamp).
        found = pc.index_in(pa.array(new_cats, type=pa.string()), value_set=old_arrow).to_numpy(zero_copy_only=False)
        missing = np.isnan(found) if found.dtype.kind == "f" else np.zeros(len(found), dtype=bool)
        where_new = np.where(missing, 0, np.nan_to_num(found)).astype(np.int64)
        where_new[missing] = len(old_cats) + np.arange(int(missing.sum()))
        extra = np.asarray(new_cats[missing], dtype=object)
        values = np.concatenate([old_cats, extra]) if len(extra) else old_cats
        base_times = _ts_per_category(old_cats, base.codes[TS], base.ts_parsed) if depth == TS else None
        times = None
        if depth == TS:
            times = np.concatenate([base_times, parse_unique_timestamps(extra)]) if len(extra) else base_times
        # The old categories are in display order already: insert the new ones where they belong.
        order = _insert_order(old_cats, extra, base_times, times[len(old_cats) :] if times is not None else None)
        rank = np.empty(len(values), dtype=np.int64)
        rank[order] = np.arange(len(values))
        merged = np.concatenate([rank[old_codes], rank[where_new[new_codes]]]).astype(np.int64)
        # Prune categories no run uses any more, keeping display order.
        used = np.unique(merged)
        remap = np.full(len(values), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        sorted_values = values[order]
        cats.append(sorted_values[used])
        codes.append(remap[merged].astype(np.int32))
        if depth == TS:
            ts_times = times[order][used]
    numeric = {}
    for name in NUMERIC_COLUMNS:
        old = base.numeric[name][keep]
        if name == "seg":
            old = seg_map[old].astype(np.int32) if len(old) else old.astype(np.int32)
        numeric[name] = np.concatenate([old, new.numeric[name]]).astype(_numeric_dtype(name))
    order = np.lexsort(codes[::-1]) if len(codes[0]) else np.zeros(0, np.int64)
    codes = [c[order] for c in codes]
    ts_parsed = ts_times[codes[TS]] if ts_times is not None and len(order) else np.zeros(0, DATETIME_DTYPE)
    return RunsData(cats, codes, ts_parsed, {k: v[order] for k, v in numeric.items()})


def _insert_order(
    old: np.ndarray, extra: np.ndarray, old_times: np.ndarray | None, extra_times: np.ndarray | None
) -> np.ndarray:
    """Return the display order of concat(old, extra) given that old is already in display order.

    Lexical for the levels above the run; for timestamps the rule (parsed time, then name; unparseable names last).
    """
    if not len(extra):
        return np.arange(len(old))
    if len(extra) * 8 > len(old):  # many new values: sorting everything is as cheap
        values = np.concatenate([old, extra])
        if old_times is None:
            return np.argsort(values, kind="stable")
        return timestamp_order(values, np.concatenate([old_times, extra_times]))

    def key(names: np.ndarray, times: np.ndarray | None, i: int) -> tuple:
        if times is None:
            return (names[i],)
        nat = bool(np.isnat(times[i]))
        return (nat, np.datetime64(0, "us") if nat else times[i], names[i])

    slots = np.array(
        [
            bisect.bisect_left(range(len(old)), key(extra, extra_times, j), key=lambda i: key(old, old_times, i))
            for j in range(len(extra))
        ],
        dtype=np.int64,
    )
    # Insert extra j before old position slots[j]; ties between extras keep their own order.
    extra_order = sorted(range(len(extra)), key=lambda j: key(extra, extra_times, j))
    return np.insert(np.arange(len(old)), slots[extra_order], len(old) + np.asarray(extra_order, dtype=np.int64))


# -- snapshot files -----------------------------------------------------------------------------


@dataclass
class Snapshot:
    """One memory-mapped snapshot: runs, segments and what the build recorded."""

    name: str
    runs: RunsData
    segments: list[pa.Table]
    segment_names: list[str]
    unrecognised: pa.Array
    meta: dict[str, Any]

    @property
    def object_count(self) -> int:
        return int((self.runs.numeric["obj_stop"] - self.runs.numeric["obj_start"]).sum())


def new_name(stem: str) -> str:
    """Return a fresh, sortable file name stem."""
    return f"{stem}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(4)}"


def segments_dir(root: Path) -> Path:
    return root / "segments"


def write_snapshot_dir(
    root: Path,
    runs: RunsData,
    segment_names: list[str],
    unrecognised: pa.Array,
    meta: dict[str, Any],
) -> str:
    """Write a snapshot directory beside the others (temp name, then rename); return its name."""
    name = new_name("snap")
    tmp = root / f".{name}.tmp"
    tmp.mkdir(parents=True)
    try:
        write_runs(tmp / "runs.arrow", runs)
        write_ipc(tmp / "unrecognised.arrow", pa.table({"name": unrecognised.cast(pa.string())}))
        body = {**meta, "schema": SCHEMA_VERSION, "segments": segment_names}
        (tmp / "meta.json").write_text(json.dumps(body))
        _fsync_file(tmp / "meta.json")
        _fsync_dir(tmp)
        os.replace(tmp, root / name)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return name


def publish(pointer: Path, name: str) -> None:
    """Point pointer at snapshot name atomically: readers see the old snapshot or the new, never a mix."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(json.dumps({"schema": SCHEMA_VERSION, "snapshot": name}))
        _fsync_file(tmp)
        os.replace(tmp, pointer)
        _fsync_dir(pointer.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_pointer(pointer: Path) -> str:
    """Return the current snapshot's name; FileNotFoundError without one, SnapshotError if unusable."""
    text = pointer.read_bytes()
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"unreadable snapshot pointer: {exc}") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA_VERSION:
        found = body.get("schema") if isinstance(body, dict) else None
        raise SnapshotError(f"schema version {found!r}, expected {SCHEMA_VERSION}")
    name = body.get("snapshot")
    if not isinstance(name, str) or not name.startswith("snap-") or "/" in name or name.startswith("snap-."):
        raise SnapshotError("snapshot pointer names no snapshot")
    return name


def open_snapshot(root: Path, name: str) -> Snapshot:
    """Memory-map snapshot name and the segments it references; raise SnapshotError when unusable."""
    directory = root / name
    try:
        meta = json.loads((directory / "meta.json").read_text())
        if meta.get("schema") != SCHEMA_VERSION:
            raise SnapshotError(f"schema version {meta.get('schema')!r}, expected {SCHEMA_VERSION}")
        runs = read_runs(_read_ipc(directory / "runs.arrow"))
        names = [str(n) for n in meta["segments"]]
        segments = [_read_ipc(segments_dir(root) / seg) for seg in names]
        for table in segments:
            if table.schema.remove_metadata() != SEGMENT_SCHEMA:
                raise SnapshotError("segment schema differs")
        unrecognised = _read_ipc(directory / "unrecognised.arrow")["name"].combine_chunks()
    except SnapshotError:
        raise
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise SnapshotError(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    _check_runs(runs, [t.num_rows for t in segments])
    return Snapshot(name, runs, segments, names, unrecognised, meta)


def _check_runs(runs: RunsData, segment_rows: list[int]) -> None:
    """Refuse runs tables whose order or offsets are wrong: queries rely on both."""
    n = len(runs)
    codes = runs.codes
    for depth, c in enumerate(codes):
        if len(c) != n:
            raise SnapshotError("runs columns differ in length")
        if n and (c.min() < 0 or c.max() >= len(runs.cats[depth])):
            raise SnapshotError(f"{HIERARCHY_LEVELS[depth]} codes out of range")
    if n > 1:
        stacked = np.stack([c.astype(np.int64) for c in codes])
        diff = stacked[:, 1:] - stacked[:, :-1]
        first = np.argmax(diff != 0, axis=0)  # the first level that differs between neighbours
        step = diff[first, np.arange(n - 1)]
        if (step <= 0).any():
            raise SnapshotError("runs are not sorted by coordinate")
    seg = runs.numeric["seg"]
    start, mid, stop = (runs.numeric[k] for k in ("obj_start", "raw_stop", "obj_stop"))
    if n and (seg.min() < 0 or seg.max() >= len(segment_rows)):
        raise SnapshotError("runs reference a missing segment")
    if n and ((start > mid).any() or (mid > stop).any() or (stop > np.asarray(segment_rows)[seg]).any()):
        raise SnapshotError("runs reference rows outside their segment")


def snapshot_dirs(root: Path) -> list[Path]:
    """Return the snapshot directories under root (complete ones only)."""
    return sorted(p for p in root.glob("snap-*") if p.is_dir())


def collect_garbage(root: Path, keep: Iterable[str]) -> None:
    """Delete snapshots not in keep, segments they alone used, and leftovers of dead builds.

    Workers still serving a deleted snapshot keep their mappings (Linux frees unlinked files when unmapped).
    """
    keep = set(keep)
    referenced: set[str] = set()
    for directory in snapshot_dirs(root):
        if directory.name in keep:
            with contextlib.suppress(OSError, ValueError, KeyError):
                referenced.update(json.loads((directory / "meta.json").read_text())["segments"])
        else:
            shutil.rmtree(directory, ignore_errors=True)
    for path in segments_dir(root).glob("seg-*.arrow"):
        if path.name not in referenced and _owner_dead(path.name):
            path.unlink(missing_ok=True)
    for path in [*root.glob(".snap-*.tmp"), *root.glob(".build-*"), *segments_dir(root).glob(".seg-*.tmp")]:
        if _owner_dead(path.name.lstrip(".")):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _owner_dead(name: str) -> bool:
    """Tell whether the process that named a file ('stem-time-pid-rand…') is gone (or it is ours and done)."""
    parts = name.split("-")
    try:
        pid = int(parts[2])
    except (IndexError, ValueError):
        return True
    if pid == os.getpid():
        return True  # called between our builds: nothing of ours is in progress
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def write_ipc(path: Path, table: pa.Table) -> None:
    """Write table as an uncompressed Arrow IPC file (mappable) and fsync it."""
    with ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)
    _fsync_file(path)


def _read_ipc(path: Path) -> pa.Table:
    """Memory-map an Arrow IPC file (zero-copy; the mapping lives as long as the table)."""
    source = pa.memory_map(str(path))
    return ipc.open_file(source).read_all()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync_file(path)
