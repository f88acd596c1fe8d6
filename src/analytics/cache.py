"""The on-disk analysis cache: processed/{coord}/analysis/{metrics.json, series.parquet, summary.json}.

Each file is written under a temporary dot-name and renamed into place (so no reader or directory walk sees a
partial file), and summary.json goes last: its presence means "analysed" (LocalScan relies on that). It records
the extraction outputs' (size, mtime_ns) and the analysis parameters; a cache whose record no longer matches
is stale. The three files share a random analysis id, so a reader never mixes files of two analyses written
concurrently by two workers. Unreadable or mismatched files read as "no cache", never as an error.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from src.analytics.metrics import MetricSeries, RunAnalysisData, metrics_from_series
from src.models import EXPECTED_EXTRACTION_FILES
from src.services.local_scan import ANALYSIS_SUMMARY

# Bump when a metric's definition or the cache layout changes: older caches then read as stale.
ANALYSIS_VERSION = 1
METRICS_FILE = "metrics.json"
SERIES_FILE = "series.parquet"
SUMMARY_FILE = ANALYSIS_SUMMARY
_ID_KEY = b"bagboard.analysis_id"
_T0_KEY = b"bagboard.t0_ns"

Fingerprint = dict[str, list[int] | None]


@dataclass(frozen=True)
class CachedAnalysis:
    """An analysis read back from disk, with when it was made."""

    data: RunAnalysisData
    created_at: datetime
    path: Path


def fingerprint(run_dir: Path) -> Fingerprint:
    """Return [size, mtime_ns] of every extraction output of run_dir (None for a missing one)."""
    result: Fingerprint = {}
    for name in EXPECTED_EXTRACTION_FILES:
        try:
            st = (run_dir / name).stat()
        except OSError:
            result[name] = None
            continue
        result[name] = [st.st_size, st.st_mtime_ns]
    return result


def parameters(rolling_window_s: float, drop_factor: float) -> dict[str, float]:
    """Return the analysis parameters as a cache records them."""
    return {"rolling_window_s": float(rolling_window_s), "drop_factor": float(drop_factor)}


def write_cache(analysis_dir: Path, data: RunAnalysisData, inputs: Fingerprint) -> datetime:
    """Write the three cache files for data computed from inputs (summary.json last); return the creation time."""
    analysis_dir.mkdir(parents=True, exist_ok=True)
    # While the files change the run is not "analysed": take the old summary away first.
    (analysis_dir / SUMMARY_FILE).unlink(missing_ok=True)
    analysis_id = uuid.uuid4().hex
    created_at = datetime.now(UTC)
    summary = data.summary()
    metrics_doc = {"analysis_id": analysis_id, "version": ANALYSIS_VERSION, "t0_ns": data.series.t0_ns, **summary}
    write_atomically(analysis_dir / METRICS_FILE, lambda tmp: _write_json(tmp, metrics_doc))
    table = _series_table(data.series, analysis_id)
    write_atomically(analysis_dir / SERIES_FILE, lambda tmp: pq.write_table(table, tmp))
    summary_doc = {
        "analysis_id": analysis_id,
        "version": ANALYSIS_VERSION,
        "created_at": created_at.isoformat(),
        "parameters": parameters(data.rolling_window_s, data.drop_factor),
        "inputs": inputs,
        "summary": {key: value for key, value in summary.items() if key not in ("class_counts", "warnings")},
    }
    write_atomically(analysis_dir / SUMMARY_FILE, lambda tmp: _write_json(tmp, summary_doc))
    return created_at


def read_summary(analysis_dir: Path) -> dict[str, Any] | None:
    """Return summary.json's content, or None when it is missing or unreadable."""
    try:
        doc = json.loads((analysis_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_current(summary: dict[str, Any] | None, inputs: Fingerprint, params: dict[str, float]) -> bool:
    """Tell whether a summary was made by this version, with these parameters, from these exact inputs."""
    return (
        summary is not None
        and summary.get("version") == ANALYSIS_VERSION
        and summary.get("parameters") == params
        and summary.get("inputs") == inputs
    )


def read_cache(analysis_dir: Path, inputs: Fingerprint, params: dict[str, float]) -> CachedAnalysis | None:
    """Return the cached analysis if it is complete and current for inputs and params, else None."""
    summary = read_summary(analysis_dir)
    if not is_current(summary, inputs, params):
        return None
    assert summary is not None  # is_current checked it
    analysis_id = summary.get("analysis_id")
    try:
        metrics_doc = json.loads((analysis_dir / METRICS_FILE).read_text(encoding="utf-8"))
        table = pq.read_table(analysis_dir / SERIES_FILE)
        created_at = datetime.fromisoformat(summary["created_at"])
        meta = table.schema.metadata or {}
        if metrics_doc.get("analysis_id") != analysis_id or meta.get(_ID_KEY, b"").decode() != analysis_id:
            return None  # files of two different analyses: one is being rewritten
        arrays = {name: pc.list_flatten(table[name]).to_numpy(zero_copy_only=False) for name in MetricSeries.ARRAYS}
        series = MetricSeries.from_arrays(int(meta[_T0_KEY]), arrays)
        metrics = metrics_from_series(series, {str(k): int(v) for k, v in metrics_doc["class_counts"].items()})
        data = RunAnalysisData(
            metrics=metrics,
            series=series,
            counts=dict(metrics_doc["counts"]),
            rolling_window_s=float(params["rolling_window_s"]),
            drop_factor=float(params["drop_factor"]),
            warnings=[str(w) for w in metrics_doc.get("warnings", [])],
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException):
        return None
    return CachedAnalysis(data, created_at, analysis_dir)


def _series_table(series: MetricSeries, analysis_id: str) -> pa.Table:
    """Return one row holding each array as a list (arrays differ in length), tagged with the analysis id."""
    columns = {}
    for name, values in series.to_arrays().items():
        flat = pa.array(np.ascontiguousarray(values))
        columns[name] = pa.ListArray.from_arrays(pa.array([0, len(flat)], type=pa.int32()), flat)
    table = pa.table(columns)
    return table.replace_schema_metadata({_ID_KEY: analysis_id.encode(), _T0_KEY: str(series.t0_ns).encode()})


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write doc as JSON (NaN is not JSON: the summary holds None instead)."""
    path.write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write path through a temporary dot-name in the same directory and rename it into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
