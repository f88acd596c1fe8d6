"""Index both buckets into a columnar inventory, kept as memory-mapped Arrow snapshots, and answer queries from it.

The on-disk form and the streaming build are in inventory_store; this module holds the in-memory view (Inventory,
RunIndex), the refresh that builds or merges a snapshot, and the service every view queries.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import structlog
from cachelib import BaseCache

from src.core.memory import release_memory
from src.models.coordinate import (
    FILTER_LEVELS,
    HIERARCHY_LEVELS,
    RunCoordinate,
    validate_part,
)
from src.models.state import CloudRawStatus
from src.services.coverage import RunSelection, TimestampCategories
from src.services.inventory_store import (
    BAG,
    BUCKETS,
    COUNT_COLUMNS,
    INFLIGHT,
    KINDS,
    PART_ROWS,
    SAMPLE,
    SCHEMA_VERSION,
    SEGMENT_SCHEMA,
    Progress,
    RunsData,
    Snapshot,
    SnapshotBuilder,
    SnapshotError,
    collect_garbage,
    listing_batches,
    merge_runs,
    new_name,
    open_snapshot,
    publish,
    read_pointer,
    segments_dir,
    valid_parts,
    write_ipc,
    write_snapshot_dir,
)
from src.services.inventory_store import (
    TS as TS_DEPTH,
)
from src.services.timestamps import DATETIME_DTYPE
from src.storage.base import Bucket, ObjectInfo, StorageError

if TYPE_CHECKING:
    from src.services.inventory_refresh import RefreshProcess

log = structlog.get_logger(__name__)

__all__ = [
    "BUCKETS",
    "KINDS",
    "SCHEMA_VERSION",
    "CloudInventoryService",
    "Inventory",
    "SnapshotError",
    "build_inventory",
    "parse_prefix",
    "read_snapshot",
    "rebuild",
    "write_snapshot",
]

GENERATION_KEY = "inventory:generation"
STALE_KEY = "inventory:stale"
ERROR_KEY = "inventory:last_error"
REFRESH_LOCK_KEY = "inventory:refreshing"
TEMPORAL_COLUMNS: tuple[str, ...] = (*HIERARCHY_LEVELS, "ts_parsed", "raw_bags", "ml_samples")
RUN_COLUMNS: tuple[str, ...] = (*HIERARCHY_LEVELS, "ts_parsed", *COUNT_COLUMNS)
UNRECOGNISED_SAMPLE = 100
# Selections (with their memoised sums) kept per index: the filters users are looking at right now.
SELECTIONS_KEPT = 32
_valid_parts = valid_parts  # the tests check the vectorised rule against validate_part


# -- the inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inventory:
    """Hold one immutable, memory-mapped inventory: per-run arrays, per-object segments and lookups."""

    snapshot: Snapshot = field(repr=False, compare=False)
    index: RunIndex = field(repr=False, compare=False)
    unrecognised: list[str]
    unrecognised_count: int
    built_at: datetime
    duration: float
    counts: dict[str, dict[str, int]]

    @property
    def run_count(self) -> int:
        """Return the number of runs."""
        return self.index.n_runs

    @property
    def object_count(self) -> int:
        """Return the number of objects in runs (both buckets)."""
        return self.snapshot.object_count

    @cached_property
    def runs(self) -> pd.DataFrame:
        """Return one row per run in coordinate order (levels as categoricals), every per-run column."""
        runs = self.snapshot.runs
        data: dict[str, Any] = {
            level: pd.Categorical.from_codes(codes, categories=pd.Index(cats, dtype=object))
            for level, cats, codes in zip(HIERARCHY_LEVELS, runs.cats, runs.codes, strict=True)
        }
        data["ts_parsed"] = np.asarray(runs.ts_parsed)
        data.update({name: np.asarray(values) for name, values in runs.numeric.items()})
        return pd.DataFrame(data)

    @cached_property
    def objects(self) -> pd.DataFrame:
        """Materialise every object with its coordinate, in run order (for tests and small inventories only)."""
        runs = self.snapshot.runs
        num = runs.numeric
        lengths = (num["obj_stop"] - num["obj_start"]).astype(np.int64)
        pieces = [
            self.snapshot.segments[int(seg)].slice(int(start), int(n))
            for seg, start, n in zip(num["seg"], num["obj_start"], lengths, strict=True)
        ]
        table = pa.concat_tables(pieces) if pieces else SEGMENT_SCHEMA.empty_table()
        data: dict[str, Any] = {}
        for level, cats, codes in zip(HIERARCHY_LEVELS, runs.cats, runs.codes, strict=True):
            data[level] = pd.Categorical.from_codes(np.repeat(codes, lengths), categories=pd.Index(cats, dtype=object))
        data["rel_name"] = pd.array(table["rel_name"], dtype="str")
        data["size"] = table["size"].to_numpy()
        data["updated"] = pd.DatetimeTZDtype("us", "UTC").__from_arrow__(table["updated"])
        data["crc32c"] = pd.array(table["crc32c"], dtype="str")
        data["md5"] = pd.array(table["md5"], dtype="str")
        data["generation"] = pd.Int64Dtype().__from_arrow__(table["generation"])
        data["bucket"] = pd.Categorical.from_codes(table["bucket"].to_numpy(), categories=list(BUCKETS))
        data["kind"] = pd.Categorical.from_codes(table["kind"].to_numpy(), categories=list(KINDS))
        return pd.DataFrame(data)


def inventory_of(snapshot: Snapshot) -> Inventory:
    """Wrap a memory-mapped snapshot with its lookups and totals."""
    num = snapshot.runs.numeric
    counts: dict[str, dict[str, int]] = {}
    for name in BUCKETS:
        per_kind = {
            "bag": int(num["raw_bags"].sum()) if name == "raw" else 0,
            "sample": int(num["ml_samples"].sum()) if name == "ml" else 0,
            "label": int(num["ml_labels"].sum()) if name == "ml" else 0,
            "other": int(num[f"{name}_other"].sum()),
            "inflight": int(num[f"{name}_inflight"].sum()),
        }
        counts[name] = {
            "objects": int(num[f"{name}_objects"].sum()) + per_kind["inflight"],
            "bytes": int(num[f"{name}_all"].sum()),
            **per_kind,
        }
    meta = snapshot.meta
    sample = snapshot.unrecognised.slice(0, UNRECOGNISED_SAMPLE).to_pylist()
    return Inventory(
        snapshot=snapshot,
        index=RunIndex(snapshot),
        unrecognised=[str(n) for n in sample],
        unrecognised_count=len(snapshot.unrecognised),
        built_at=datetime.fromisoformat(meta["built_at"]),
        duration=float(meta.get("duration", 0.0)),
        counts=counts,
    )


class RunIndex:
    """Answer prefix queries on the sorted runs table by binary search; read objects one run at a time."""

    def __init__(self, snapshot: Snapshot) -> None:
        runs = snapshot.runs
        self.n_runs = len(runs)
        self.codes = list(runs.codes)
        self.values = list(runs.cats)
        self.arrow_values = runs.arrow_cats or [pa.array(v, type=pa.string()) for v in self.values]
        # Hash maps for the levels above the run (thousands of values at most); a timestamp is looked up inside
        # its parent's span, or by a scan of the arrow strings, so loading never hashes one string per run.
        self.lookup = [{value: code for code, value in enumerate(v)} for v in self.values[:TS_DEPTH]]
        self.columns: dict[str, np.ndarray] = {"ts_parsed": runs.ts_parsed, **runs.numeric}
        self._selections: OrderedDict[tuple, RunSelection] = OrderedDict()
        self._selections_lock = threading.Lock()
        self.segments = snapshot.segments
        # What coverage queries need, ready to slice: per-category parsed times and string ranks of timestamps.
        ts_times = np.full(len(self.values[-1]), np.datetime64("NaT"), dtype=DATETIME_DTYPE)
        ts_times[self.codes[-1]] = runs.ts_parsed
        self.timestamps = TimestampCategories(self.values[-1], ts_times)
        self.raw_bags = self.columns["raw_bags"]
        self.ml_samples = self.columns["ml_samples"]
        self._children: dict[tuple[int, tuple[str, ...]], list[str]] = {}

    def code(self, depth: int, value: str) -> int | None:
        """Return value's code at depth, or None when no run has it."""
        if depth < TS_DEPTH:
            return self.lookup[depth].get(value)
        found = pc.index(self.arrow_values[depth], pa.scalar(value, pa.string())).as_py()
        return None if found is None or found < 0 else int(found)

    def span(self, prefix: tuple[str, ...]) -> tuple[int, int]:
        """Return the run rows [lo, hi) whose leading levels equal prefix."""
        lo, hi = 0, self.n_runs
        for depth, value in enumerate(prefix):
            if depth == TS_DEPTH:
                # Runs of one parent are few: compare their timestamp names instead of looking the code up.
                names = self.values[depth][self.codes[depth][lo:hi]]
                hits = np.flatnonzero(names == value)
                return (lo + int(hits[0]), lo + int(hits[-1]) + 1) if len(hits) else (0, 0)
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

    def objects(self, row: int, bucket_type: str) -> pa.Table:
        """Return the run's objects in one bucket (a zero-copy slice of its segment), sorted by name."""
        cols = self.columns
        start = int(cols["obj_start"][row] if bucket_type == "raw" else cols["raw_stop"][row])
        stop = int(cols["raw_stop"][row] if bucket_type == "raw" else cols["obj_stop"][row])
        return self.segments[int(cols["seg"][row])].slice(start, stop - start)

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
        """Return the runs under filters as arrays, in coordinate order (views, no copies, for leading levels).

        The same filters get the same selection object while this index lives, so the sums a selection memoises
        (everything that does not depend on the expected samples per bag) are computed once per filter.
        """
        key = tuple(sorted(filters.items()))
        with self._selections_lock:
            found = self._selections.get(key)
            if found is not None:
                self._selections.move_to_end(key)
                return found
        selection = self._select(filters)
        with self._selections_lock:
            self._selections[key] = selection
            while len(self._selections) > SELECTIONS_KEPT:
                self._selections.popitem(last=False)
        return selection

    def _select(self, filters: dict[str, str]) -> RunSelection:
        """Build the selection of the runs under filters."""
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
            code = self.code(depth, filters[HIERARCHY_LEVELS[depth]])
            rows = rows[self.codes[depth][rows] == (-1 if code is None else code)]
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


# -- building, reading and writing snapshots ----------------------------------------------------


def parse_prefix(prefix: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a subtree ('cid/regionid/…', one to six levels) and return its parts."""
    parts = tuple(p for p in prefix.strip("/").split("/")) if isinstance(prefix, str) else tuple(prefix)
    if not parts or parts == ("",) or len(parts) > len(HIERARCHY_LEVELS):
        raise ValueError(f"a prefix has 1 to {len(HIERARCHY_LEVELS)} levels (cid/regionid/…), got {prefix!r}")
    for level, value in zip(HIERARCHY_LEVELS, parts, strict=False):
        validate_part(level, value)
    return parts


def _outermost(prefixes: Iterable[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Drop prefixes that lie under another one of the set (their listing is already included)."""
    unique = sorted(set(prefixes), key=len)
    kept: list[tuple[str, ...]] = []
    for prefix in unique:
        if not any(prefix[: len(k)] == k for k in kept):
            kept.append(prefix)
    return sorted(kept)


def rebuild(
    buckets: Mapping[str, Bucket],
    pointer: Path,
    *,
    built_at: datetime,
    prefixes: Sequence[tuple[str, ...]] | None = None,
    base: Inventory | None = None,
    progress: Progress | None = None,
    part_rows: int = PART_ROWS,
) -> str:
    """List (all, or the prefixes merged into base), write a snapshot beside the current one, publish it.

    Raises StorageError (message names the bucket) when a listing fails; nothing is published then.
    """
    t0 = time.perf_counter()
    root = Path(pointer).parent
    segments_dir(root).mkdir(parents=True, exist_ok=True)
    collect_garbage(root, keep=[p.name for p in root.glob("snap-*")])  # leftovers of crashed builds only
    subtree = prefixes is not None and base is not None
    paths = [""] if not subtree else ["/".join(p) + "/" for p in _outermost(prefixes or [])]

    def batches() -> Iterator[tuple[pa.RecordBatch, list[str]]]:
        for label, bucket in buckets.items():
            for path in paths:
                try:
                    yield from listing_batches(label, bucket, path, progress)
                except StorageError as exc:
                    detail = _one_line(str(exc)) or type(exc).__name__
                    raise _same_kind(exc, f"cannot list the {label} bucket ({bucket.url}): {detail}") from exc

    fresh, segment_name, rejected = build_segment(batches(), root, progress=progress, part_rows=part_rows)
    if subtree:
        assert base is not None
        runs, segment_names, unrecognised = _merge(base, _outermost(prefixes or []), fresh, segment_name, rejected)
        meta = {"built_at": base.built_at.isoformat(), "refreshed_at": built_at.isoformat(), "prefixes": paths}
    else:
        runs, segment_names, unrecognised = fresh, [segment_name], rejected
        meta = {"built_at": built_at.isoformat()}
    meta["duration"] = time.perf_counter() - t0
    if progress is not None:
        progress("writing snapshot", int((runs.numeric["obj_stop"] - runs.numeric["obj_start"]).sum()))
    return publish_build(pointer, runs, segment_names, unrecognised, meta)


def build_segment(
    batches: Iterable[tuple[pa.RecordBatch | pa.Table, list[str]]],
    root: Path,
    *,
    progress: Progress | None = None,
    part_rows: int = PART_ROWS,
) -> tuple[RunsData, str, pa.Array]:
    """Stream listing batches into a new segment under root; return its runs, its file name and the rejected names."""
    work = root / f".{new_name('build')}"
    segment_name = new_name("seg") + ".arrow"
    try:
        builder = SnapshotBuilder(work, part_rows)
        for batch, bad in batches:
            builder.add(batch, bad)
        if progress is not None:
            progress("building inventory", builder.rows)
        runs = builder.finish(segments_dir(root) / segment_name, progress=progress)
        return runs, segment_name, builder.rejected()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish_build(
    pointer: Path, runs: RunsData, segment_names: list[str], unrecognised: pa.Array, meta: dict[str, Any]
) -> str:
    """Write a snapshot beside the current one and publish it; return its name."""
    root = Path(pointer).parent
    previous = _current_name(pointer)
    name = write_snapshot_dir(root, runs, segment_names, unrecognised, meta)
    publish(pointer, name)
    # Keep the previous snapshot too: a worker may be between reading the pointer and mapping the files.
    collect_garbage(root, keep=[name, *([previous] if previous else [])])
    return name


def _merge(
    base: Inventory, prefixes: list[tuple[str, ...]], fresh: RunsData, segment_name: str, rejected: pa.Array
) -> tuple[RunsData, list[str], pa.Array]:
    """Replace the runs under prefixes in base by fresh; keep the segments still used."""
    index = base.index
    drop = np.zeros(index.n_runs, dtype=bool)
    for prefix in prefixes:
        lo, hi = index.span(prefix)
        drop[lo:hi] = True
    kept_segments = np.unique(np.asarray(index.columns["seg"])[~drop])
    seg_map = np.full(len(base.snapshot.segment_names), -1, dtype=np.int64)
    seg_map[kept_segments] = np.arange(len(kept_segments))
    names = [base.snapshot.segment_names[i] for i in kept_segments] + [segment_name]
    fresh.numeric["seg"] = np.full(len(fresh), len(kept_segments), dtype=np.int32)
    runs = merge_runs(base.snapshot.runs, drop, fresh, seg_map)
    old = base.snapshot.unrecognised
    if len(old):
        under = np.zeros(len(old), dtype=bool)
        for label in BUCKETS:
            for prefix in prefixes:
                under |= np.asarray(pc.starts_with(old, f"{label}:{'/'.join(prefix)}/").to_numpy(zero_copy_only=False))
        old = old.filter(pa.array(~under))
    return runs, names, pa.concat_arrays([old.cast(pa.string()), rejected.cast(pa.string())])


def _current_name(pointer: Path) -> str | None:
    """Return the snapshot the pointer names, or None when there is no usable pointer."""
    try:
        return read_pointer(pointer)
    except (OSError, SnapshotError):
        return None


def build_inventory(
    listing: pa.Table | pd.DataFrame,
    *,
    built_at: datetime,
    duration: float = 0.0,
    unrecognised: Iterable[str] = (),
    part_rows: int = PART_ROWS,
) -> Inventory:
    """Turn a listing (bucket, name, size, updated, crc32c, md5, generation) into a mapped Inventory."""
    with tempfile.TemporaryDirectory(prefix="bagboard-inventory-") as tmp:
        root = Path(tmp)
        segments_dir(root).mkdir()
        builder = SnapshotBuilder(root / "build", part_rows)
        builder.add(listing, unrecognised)
        runs = builder.finish(segments_dir(root) / "seg-0.arrow")
        name = write_snapshot_dir(
            root, runs, ["seg-0.arrow"], builder.rejected(), {"built_at": built_at.isoformat(), "duration": duration}
        )
        # The mappings outlive the unlinked files, so the temporary directory can go now.
        return inventory_of(open_snapshot(root, name))


def write_snapshot(inventory: Inventory, pointer: Path) -> None:
    """Write inventory as the current snapshot under pointer's directory (segments copied, then published)."""
    root = Path(pointer).parent
    segments_dir(root).mkdir(parents=True, exist_ok=True)
    names = []
    for table in inventory.snapshot.segments:
        name = new_name("seg") + ".arrow"
        tmp = segments_dir(root) / f".{name}.tmp"
        write_ipc(tmp, table)
        os.replace(tmp, segments_dir(root) / name)
        names.append(name)
    snap = inventory.snapshot
    meta = {k: v for k, v in snap.meta.items() if k not in ("schema", "segments")}
    publish(pointer, write_snapshot_dir(root, snap.runs, names, snap.unrecognised, meta))


def read_snapshot(pointer: Path) -> Inventory:
    """Map the current snapshot; raise FileNotFoundError if there is none and SnapshotError if unusable."""
    pointer = Path(pointer)
    for attempt in range(3):
        name = read_pointer(pointer)  # FileNotFoundError propagates: no snapshot yet
        try:
            inventory = inventory_of(open_snapshot(pointer.parent, name))
            break
        except SnapshotError:
            # Refreshes may have published (and collected this one) between reading the pointer and mapping it.
            if attempt == 2 or read_pointer(pointer) == name:
                raise
    release_memory()
    return inventory


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


def _same_kind(exc: StorageError, message: str) -> StorageError:
    """Return a StorageError of exc's class carrying message."""
    try:
        return type(exc)(message)
    except Exception:  # a subclass with a different constructor
        return StorageError(message)


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
        refresh_process: RefreshProcess | None = None,
        part_rows: int = PART_ROWS,
    ) -> None:
        # A web app passes refresh_on_query=False: a query must never wait minutes for a listing,
        # so refreshes run from the CLI or a background job instead.
        self._refresh_on_query = refresh_on_query
        # With a refresh process, listings and builds run in a child process: a web worker never holds a build.
        self._process = refresh_process
        self._part_rows = part_rows
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

    def refresh_inventory(
        self,
        progress: Progress | None = None,
        prefixes: Iterable[str | Sequence[str]] | None = None,
        *,
        in_process: bool = False,
    ) -> Inventory:
        """List both buckets (or only the prefixes, merged in), write a snapshot and bump the shared generation.

        With a refresh process configured the work runs in a child process unless in_process (the CLI).
        """
        parsed = None if prefixes is None else [parse_prefix(p) for p in prefixes]
        if parsed is not None and not parsed:
            raise ValueError("no prefix to refresh")
        token = self._take_refresh_lock()
        try:
            with self._refresh_lock:
                return self._refresh(progress, parsed, in_process=in_process)
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
                snapshot=None,
                segments=0,
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
            snapshot=inventory.snapshot.name,
            segments=len(inventory.snapshot.segment_names),  # grows with subtree refreshes; a full one compacts
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
        objects = index.objects(lo, bucket_type)
        rel = "/".join(path[len(HIERARCHY_LEVELS) :])
        for name, kind in zip(objects["rel_name"].to_pylist(), objects["kind"].to_pylist(), strict=True):
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
        objects = index.objects(row, "raw")
        bags = np.flatnonzero(objects["kind"].to_numpy() == BAG)
        names = objects["rel_name"].take(pa.array(bags)).to_pylist()
        return CloudRawStatus(
            exists=bool(index.columns["raw_objects"][row]),
            bag_count=len(names),
            bag_names=names,
            total_size=int(objects["size"].to_numpy()[bags].sum()),
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
        objects = index.objects(row, "ml")
        samples = np.flatnonzero(objects["kind"].to_numpy() == SAMPLE)
        return {
            "sample_count": int(index.columns["ml_samples"][row]),
            "label_count": int(index.columns["ml_labels"][row]),
            "total_size": int(index.columns["ml_bytes"][row]),
            "sample_names": objects["rel_name"].take(pa.array(samples)).to_pylist(),
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
        """Rebuild ObjectInfo for the live objects of one run in one bucket (reads only that run's pages)."""
        inventory = self._current()
        row = inventory.index.run_row(coord) if inventory else None
        if inventory is None or row is None:
            return []
        objects = inventory.index.objects(row, bucket_type)
        objects = objects.filter(pc.not_equal(objects["kind"], INFLIGHT))
        prefix = coord.to_path_str() + "/"
        columns = (objects[name].to_pylist() for name in ("rel_name", "size", "updated", "crc32c", "md5", "generation"))
        return [
            ObjectInfo(name=prefix + rel, size=int(size), updated=updated, crc32c=crc, md5=md5, generation=generation)
            for rel, size, updated, crc, md5, generation in zip(*columns, strict=True)
        ]

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

    def refresh_if_idle(
        self, progress: Progress | None = None, prefixes: Iterable[str | Sequence[str]] | None = None
    ) -> Inventory | None:
        """Refresh (everything, or only prefixes) unless another worker holds the refresh lock (then return None)."""
        parsed = None if prefixes is None else [parse_prefix(p) for p in prefixes]
        token = self._take_refresh_lock()
        if token is None:
            return None
        try:
            with self._refresh_lock:
                return self._refresh(progress, parsed)
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

    def _refresh(
        self, progress: Progress | None, prefixes: list[tuple[str, ...]] | None = None, *, in_process: bool = False
    ) -> Inventory:
        """Build (or merge) and publish a snapshot, then adopt it; on a storage failure record it and re-raise.

        The caller holds _refresh_lock; _lock is taken only to swap the in-memory copy.
        """
        started = self._clock()
        base = self._sync() if prefixes is not None else None
        if prefixes is not None and base is None:
            prefixes = None  # nothing to merge into: list everything
        try:
            if self._process is not None and not in_process:
                self._process.run(self._path, prefixes, progress)
            else:
                rebuild(
                    self._buckets,
                    self._path,
                    built_at=datetime.fromtimestamp(started, tz=UTC),
                    prefixes=prefixes,
                    base=base,
                    progress=progress,
                    part_rows=self._part_rows,
                )
        except StorageError as exc:
            with self._lock:
                self._record_failure(str(exc))
            raise
        inventory = read_snapshot(self._path)  # which hands the build's freed memory back first
        with self._lock:
            # Swap the copy in before publishing the generation so no reader pairs new with old.
            self._inventory = inventory
            self._file_id = _file_identity(self._path)
            self._loaded = True
            self._snapshot_unusable = False
            if prefixes is None:
                self._record_success(started)
            else:
                self._bump_generation(adopt=True)
        log.info(
            "inventory_refreshed",
            prefixes=["/".join(p) for p in prefixes] if prefixes else None,
            objects=inventory.object_count,
            runs=inventory.run_count,
            unrecognised=inventory.unrecognised_count,
            seconds=round(inventory.duration, 3),
        )
        if progress is not None:
            progress("done", inventory.object_count)
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
