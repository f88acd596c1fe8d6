"""A run's fleet KPIs: one small file beside its analysis cache, and a change marker that says which run changed.

processed/{coord}/analysis/kpis.json holds the handful of numbers the fleet view rolls up, with the analysis id and
the extraction fingerprint the analysis was made from, so a reader can tell it is current without the parquet. Every
write or removal of one (atomic: temporary name, then rename) also drops a marker in ``{data_root}/fleet/changes/``
named by the time it was made and holding the run's coordinate: a process that gathered the KPI files into a table
re-reads only the runs named by markers newer than its table (src/services/fleet.py).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

from src.analytics.cache import write_atomically
from src.analytics.metrics import RunAnalysisData
from src.services.timestamps import parse_timestamp

KPIS_FILE = "kpis.json"
FLEET_DIR = "fleet"
CHANGES_DIR = "changes"
KPIS_VERSION = 1


def _finite(value: Any) -> float | None:
    """Return value as a float, or None when missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def per_minute(count: float | None, duration_s: float | None) -> float | None:
    """Return count per minute of duration (None without a positive duration)."""
    if count is None or not duration_s or duration_s <= 0:
        return None
    return float(count) / (duration_s / 60.0)


def run_started_at(timestamp: str, t0_ns: int | None) -> float | None:
    """Return the run's start (epoch s): its timestamp folder's date when it has one, else its first stamp."""
    parsed = parse_timestamp(timestamp)
    if parsed is not None:
        return parsed.replace(tzinfo=UTC).timestamp()
    if t0_ns and t0_ns > 0:
        return t0_ns / 1e9
    return None


def kpis_doc(data: RunAnalysisData, timestamp: str, analysis_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Return the KPI document of one analysed run."""
    metrics, counts = data.metrics, data.counts
    duration = _finite(counts.get("duration_s"))
    drops = int(counts.get("frame_drops", len(metrics.frame_drops or [])))
    tracks = metrics.total_tracks
    return {
        "version": KPIS_VERSION,
        "analysis_id": analysis_id,
        "inputs": inputs,
        "parameters": {"rolling_window_s": data.rolling_window_s, "drop_factor": data.drop_factor},
        "started_at": run_started_at(timestamp, data.series.t0_ns),
        "duration_s": duration,
        "frame_drops": drops,
        "tracks": tracks,
        "mean_fps": _finite(metrics.mean_frame_fps),
        "latency_p50_ms": _finite(metrics.latency_p50_ms),
        "latency_p95_ms": _finite(metrics.latency_p95_ms),
        "latency_p99_ms": _finite(metrics.latency_p99_ms),
        "drops_per_min": per_minute(drops, duration),
        "tracks_per_min": per_minute(tracks, duration),
        "mean_track_lifetime_s": _finite(metrics.avg_track_lifetime),
    }


def write_kpis(analysis_dir: Path, data_root: Path, coordinate: str, doc: dict[str, Any]) -> None:
    """Write kpis.json atomically and mark the run changed."""
    atomic_write_json(analysis_dir / KPIS_FILE, doc)
    mark_changed(data_root, coordinate)


def remove_kpis(analysis_dir: Path, data_root: Path, coordinate: str) -> None:
    """Remove a run's kpis.json (its analysis is going away or being redone) and mark the run changed."""
    try:
        (analysis_dir / KPIS_FILE).unlink()
    except FileNotFoundError:
        return
    mark_changed(data_root, coordinate)


def read_kpis(path: Path) -> dict[str, Any] | None:
    """Return a kpis.json's content, or None when missing, unreadable or of another version."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == KPIS_VERSION else None


def changes_dir(data_root: Path) -> Path:
    """Return the directory of change markers."""
    return Path(data_root) / FLEET_DIR / CHANGES_DIR


def mark_changed(data_root: Path, coordinate: str) -> str:
    """Drop a marker naming the run (atomically: readers never see it half-written); return its name."""
    directory = changes_dir(data_root)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    atomic_write_text(directory / name, coordinate)
    return name


def list_changes(data_root: Path, after: str = "") -> list[str]:
    """Return the marker names newer than `after`, oldest first (names sort by time)."""
    try:
        names = os.listdir(changes_dir(data_root))
    except OSError:
        return []
    return sorted(name for name in names if not name.startswith(".") and name > after)


def read_change(data_root: Path, name: str) -> str | None:
    """Return the coordinate a marker names, or None if it is gone."""
    try:
        return (changes_dir(data_root) / name).read_text(encoding="utf-8")
    except OSError:
        return None


def prune_changes(data_root: Path, upto: str) -> int:
    """Delete the markers up to and including `upto` (a snapshot covers them); return how many."""
    removed = 0
    for name in list_changes(data_root):
        if name > upto:
            break
        (changes_dir(data_root) / name).unlink(missing_ok=True)
        removed += 1
    return removed


def atomic_write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write doc as JSON through a temporary dot-name in the same directory, then rename it into place."""
    atomic_write_text(path, json.dumps(doc, allow_nan=False, separators=(",", ":")))


def atomic_write_text(path: Path, text: str) -> None:
    """Write text through a temporary dot-name in the same directory, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
