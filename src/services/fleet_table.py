"""The gathered table of every analysed run's KPIs, kept current from change markers and a shared snapshot."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from src.analytics.cache import fingerprint, write_atomically
from src.analytics.kpis import (
    FLEET_DIR,
    KPIS_FILE,
    atomic_write_text,
    list_changes,
    prune_changes,
    read_change,
    read_kpis,
)
from src.core.logging import get_logger
from src.models import HIERARCHY_LEVELS
from src.models.fleet import KPI_NAMES
from src.services.local_scan import ANALYSIS_DIR

log = get_logger("bagboard.fleet")
NUMBER_COLUMNS = ("started_at_s", "duration_s", "frame_drops", "tracks", *KPI_NAMES)
SNAPSHOT_FILE = "table.parquet"
POSITION_FILE = "table.position"
SNAPSHOT_EVERY = 200  # change markers since the snapshot before a new one is saved
_POSITION_KEY = b"bagboard.fleet_position"


def empty_table() -> pd.DataFrame:
    """Return the gathered table's shape without rows."""
    frame = pd.DataFrame({level: pd.Series(dtype=object) for level in ("coordinate", *HIERARCHY_LEVELS)})
    for name in NUMBER_COLUMNS:
        frame[name] = pd.Series(dtype=float)
    frame["started_at"] = pd.Series(dtype="datetime64[ns]")
    return frame


def table_from_docs(rows: list[tuple[tuple[str, ...], dict[str, Any]]]) -> pd.DataFrame:
    """Build the table from (six parts, KPI document) pairs."""
    if not rows:
        return empty_table()
    parts = list(zip(*(row[0] for row in rows), strict=True))
    frame = pd.DataFrame({level: list(values) for level, values in zip(HIERARCHY_LEVELS, parts, strict=True)})
    frame.insert(0, "coordinate", ["/".join(row[0]) for row in rows])
    for name in NUMBER_COLUMNS:
        key = "started_at" if name == "started_at_s" else name
        frame[name] = pd.to_numeric(pd.Series([row[1].get(key) for row in rows], dtype=object), errors="coerce")
    frame["started_at"] = pd.to_datetime(frame["started_at_s"], unit="s", errors="coerce")
    return frame.sort_values("coordinate", ignore_index=True)


class FleetTable:
    """The gathered KPI table of every analysed run, kept current from the change markers.

    A process gathers the KPI files once (or loads the snapshot another process saved), then on each use lists the
    change markers newer than its table and re-reads only those runs. Every SNAPSHOT_EVERY markers the table is
    saved as a snapshot (parquet, atomically) so a new worker starts from it instead of walking every run.
    """

    def __init__(self, data_root: Path, params: dict[str, float]) -> None:
        self.data_root = Path(data_root)
        self.processed_root = self.data_root / "processed"
        self.params = params
        self._lock = threading.Lock()
        self._table: pd.DataFrame | None = None
        self._position = ""  # the newest change marker the table includes

    @property
    def snapshot_path(self) -> Path:
        """Return where the shared snapshot lives."""
        return self.data_root / FLEET_DIR / SNAPSHOT_FILE

    def version(self) -> str:
        """Return the newest change the table includes, after catching up (a directory listing)."""
        return self.current()[0]

    def get(self) -> pd.DataFrame:
        """Return the table, caught up with every change marker."""
        return self.current()[1]

    def current(self) -> tuple[str, pd.DataFrame]:
        """Return (the newest change included, the table) from one catching up."""
        with self._lock:
            self._refresh()
            assert self._table is not None
            return self._position, self._table

    def _refresh(self) -> None:
        """Start from the snapshot or a full gathering when behind it, then apply the newer markers."""
        snapshot = self._snapshot_position()
        if self._table is None or snapshot > self._position:
            loaded = self._load_snapshot()
            if loaded is not None and (self._table is None or loaded[1] > self._position):
                self._table, self._position = loaded
            elif self._table is None:
                self._gather_all()
        markers = list_changes(self.data_root)  # one listing for both questions below
        changes = [name for name in markers if name > self._position]
        if changes:
            self._apply(changes)
        saved = max(snapshot, self._snapshot_position())
        if sum(name > saved for name in markers) >= SNAPSHOT_EVERY:
            self._save_snapshot()

    def _gather_all(self) -> None:
        """Walk every run's KPI file (markers already present are covered by the walk)."""
        started = time.perf_counter()
        known = list_changes(self.data_root)
        self._table = table_from_docs(list(self._current_docs()))
        self._position = known[-1] if known else ""
        log.info("fleet_table_gathered", runs=len(self._table), seconds=round(time.perf_counter() - started, 3))
        self._save_snapshot()

    def _apply(self, changes: list[str]) -> None:
        """Re-read the runs the markers name and replace their rows."""
        assert self._table is not None
        paths = {path for name in changes if (path := read_change(self.data_root, name))}
        rows = []
        for path in sorted(paths):
            parts = tuple(path.split("/"))
            doc = (
                self._current_doc(self.processed_root.joinpath(*parts)) if len(parts) == len(HIERARCHY_LEVELS) else None
            )
            if doc is not None:
                rows.append((parts, doc))
        kept = self._table[~self._table["coordinate"].isin(paths)]
        fresh = table_from_docs(rows)
        self._table = (
            pd.concat([kept, fresh], ignore_index=True).sort_values("coordinate", ignore_index=True)
            if len(fresh)
            else kept.reset_index(drop=True)
        )
        self._position = changes[-1]

    def _current_doc(self, run_dir: Path) -> dict[str, Any] | None:
        """Return a run's KPI document if it matches its current extraction outputs and the parameters."""
        doc = read_kpis(run_dir / ANALYSIS_DIR / KPIS_FILE)
        if doc is None or doc.get("parameters") != self.params or doc.get("inputs") != fingerprint(run_dir):
            return None  # stale: the extraction changed or another analysis setting made it
        return doc

    def _current_docs(self) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
        """Yield (parts, doc) for every run whose KPI file is current."""
        for parts, run_dir in run_dirs(self.processed_root):
            doc = self._current_doc(run_dir)
            if doc is not None:
                yield parts, doc

    def _snapshot_position(self) -> str:
        """Return the position the saved snapshot covers ('' without one)."""
        try:
            return (self.snapshot_path.parent / POSITION_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def _load_snapshot(self) -> tuple[pd.DataFrame, str] | None:
        """Read the snapshot and the position recorded inside it, or None when missing or unreadable."""
        try:
            table = pq.read_table(self.snapshot_path)
        except (OSError, pa.ArrowException):
            return None
        position = (table.schema.metadata or {}).get(_POSITION_KEY, b"").decode()
        frame = table.to_pandas()
        if list(frame.columns) != list(empty_table().columns):
            return None  # another layout: gather again
        return frame, position

    def _save_snapshot(self) -> None:
        """Save the table and its position atomically, then drop the markers it covers (kept 10 minutes)."""
        assert self._table is not None
        table = pa.Table.from_pandas(self._table, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), _POSITION_KEY: self._position.encode()})
        path = self.snapshot_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(path, lambda tmp: pq.write_table(table, tmp))
        except OSError as exc:  # a read-only data root costs the snapshot, not the table
            log.warning("fleet_snapshot_not_written", error=str(exc))
            return
        atomic_write_text(path.parent / POSITION_FILE, self._position)
        if self._position:
            # Another worker may be applying markers just older than this snapshot: leave it ten minutes.
            cutoff = int(self._position[:20]) - 600 * 10**9
            prune_changes(self.data_root, f"{max(cutoff, 0):020d}")


def run_dirs(root: Path, depth: int = len(HIERARCHY_LEVELS)) -> Iterator[tuple[tuple[str, ...], Path]]:
    """Yield (parts, path) of every directory depth levels under root that has an analysis folder."""
    stack: list[tuple[tuple[str, ...], str]] = [((), str(root))]
    while stack:
        parts, path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        if len(parts) == depth - 1:
            for entry in entries:
                if entry.is_dir() and not entry.name.startswith("."):
                    run = Path(entry.path)
                    if (run / ANALYSIS_DIR / KPIS_FILE).is_file():
                        yield (*parts, entry.name), run
            continue
        stack.extend(
            ((*parts, entry.name), entry.path) for entry in entries if entry.is_dir() and not entry.name.startswith(".")
        )


def under(table: pd.DataFrame, filters: dict[str, str]) -> pd.DataFrame:
    """Return the rows under a filter prefix."""
    mask = np.ones(len(table), dtype=bool)
    for level, value in filters.items():
        mask &= table[level].to_numpy() == value
    return table[mask] if not mask.all() else table
