"""Read a run's extraction outputs (frames.csv, detections.csv, tracking.csv, metadata.json) with pyarrow."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from src.models import ExtractedData

# The one place that knows the extractor's column names: analysis name -> column name in the CSV.
# If the extractor renames a column, change the right-hand side here; nothing else refers to the CSV names.
COLUMNS: dict[str, dict[str, str]] = {
    "frames": {"stamp_ns": "stamp_ns", "recv_ns": "receive_ns", "topic": "topic"},
    "detections": {"stamp_ns": "stamp_ns", "recv_ns": "receive_ns", "class_id": "class_id"},
    "tracking": {"stamp_ns": "stamp_ns", "recv_ns": "receive_ns", "track_id": "track_id"},
}
FILES: dict[str, str] = {"frames": "frames.csv", "detections": "detections.csv", "tracking": "tracking.csv"}
# Columns compute_metrics reads; the rest of each file is skipped while parsing (most of the CSV bytes are boxes).
NEEDED: dict[str, tuple[str, ...]] = {
    "frames": ("stamp_ns", "topic"),
    "detections": ("stamp_ns", "recv_ns", "class_id"),
    "tracking": ("stamp_ns", "track_id"),
}
OPTIONAL: frozenset[tuple[str, str]] = frozenset({("frames", "topic")})  # one camera topic needs no topic column
NS_COLUMNS = ("stamp_ns", "recv_ns")
METADATA_FILE = "metadata.json"
JSON_FILES = {"detections_json": "detections.json", "tracking_json": "tracking.json"}
# Bigger blocks than pyarrow's 1 MiB default: fewer per-block costs on 100 MB files, still one block per thread.
BLOCK_SIZE = 16 << 20


class AnalysisInputError(ValueError):
    """An extraction output is missing or unreadable; the message names the file and the problem."""


def empty_frame(kind: str) -> pd.DataFrame:
    """Return a zero-row table of kind with the analysis column names."""
    columns = {name: pd.Series([], dtype="int64" if name in NS_COLUMNS else "object") for name in NEEDED[kind]}
    return pd.DataFrame(columns)


def read_table(path: Path, kind: str, *, all_columns: bool = False) -> pd.DataFrame:
    """Read one of frames/detections/tracking.csv, renamed to the analysis column names."""
    mapping = COLUMNS[kind]
    try:
        header = _header(path)
    except OSError as exc:
        raise AnalysisInputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AnalysisInputError(f"{path}: not a CSV file ({exc})") from exc
    if header is None:  # a 0-byte file: nothing was recorded, not a broken file
        return empty_frame(kind)
    missing = [
        f"{mapping[name]!r}" for name in NEEDED[kind] if mapping[name] not in header and (kind, name) not in OPTIONAL
    ]
    if missing:
        raise AnalysisInputError(f"{path}: missing column {', '.join(missing)} (has {', '.join(header)})")
    wanted = [mapping[name] for name in NEEDED[kind] if mapping[name] in header]
    include = header if all_columns else wanted
    types = {mapping[name]: pa.int64() for name in NS_COLUMNS if name in mapping and mapping[name] in header}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE),
            convert_options=pacsv.ConvertOptions(
                include_columns=include,
                column_types=types,
                strings_can_be_null=True,
                # Class ids and topics repeat: as categories they parse a little faster and count in microseconds.
                auto_dict_encode=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise AnalysisInputError(f"{path}: {str(exc).splitlines()[0]}") from exc
    stamp = mapping["stamp_ns"]
    if table[stamp].null_count:  # a row without a stamp cannot be placed in time
        table = table.filter(table[stamp].is_valid())
    # Nullable ints only when needed: int64 with nulls would otherwise become float64 and lose nanoseconds.
    has_null_ints = any(pa.types.is_integer(col.type) and col.null_count for col in table.columns)
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get if has_null_ints else None)
    return frame.rename(columns={column: name for name, column in mapping.items() if column != name})


def load_extracted(directory: Path | str, *, all_columns: bool = False, include_json: bool = False) -> ExtractedData:
    """Load an extracted run directory; frames.csv is required, missing detection/tracking files read as empty.

    Only the columns the analysis needs are parsed unless all_columns is set. detections.json and
    tracking.json repeat the CSVs and can be large, so they are read only with include_json.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AnalysisInputError(f"{directory}: not a directory")
    frames_path = directory / FILES["frames"]
    if not frames_path.is_file():
        raise AnalysisInputError(f"{directory}: no {FILES['frames']} (not an extracted run)")
    tables: dict[str, pd.DataFrame] = {}
    for kind, name in FILES.items():
        path = directory / name
        tables[kind] = read_table(path, kind, all_columns=all_columns) if path.is_file() else empty_frame(kind)
    data = load_metadata(directory)
    data.frames_df, data.detections_df, data.tracking_df = tables["frames"], tables["detections"], tables["tracking"]
    if not data.source_bags and "bag" in data.frames_df.columns:
        data.source_bags = sorted(str(bag) for bag in data.frames_df["bag"].dropna().unique())
    if include_json:
        for key, name in JSON_FILES.items():
            value = _read_json(directory / name)
            setattr(data, key, value if isinstance(value, dict) else None)
    return data


def load_metadata(directory: Path | str) -> ExtractedData:
    """Return a run's metadata.json, extraction time and source bags, without reading the tables."""
    path = Path(directory) / METADATA_FILE
    metadata = _read_json(path)
    if not isinstance(metadata, dict):
        metadata = None
    try:  # metadata.json is written with the outputs: its mtime is when the extraction finished
        extraction_time = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        extraction_time = None
    return ExtractedData(metadata=metadata, extraction_time=extraction_time, source_bags=_source_bags(metadata))


def _header(path: Path) -> list[str] | None:
    """Return the column names on the first line, or None for an empty file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    if not first.strip():
        return None
    return next(csv.reader([first]))


def _read_json(path: Path) -> Any:
    """Parse a JSON file; raise AnalysisInputError naming it when it is unreadable."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnalysisInputError(f"{path}: cannot parse ({exc})") from exc


def _source_bags(metadata: dict[str, Any] | None) -> list[str]:
    """Return the bags metadata.json names, if it names them."""
    for key in ("source_bags", "bags"):
        value = (metadata or {}).get(key)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
    return []
