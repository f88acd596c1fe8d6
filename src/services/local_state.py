"""Report what of a run is on local disk: downloaded bags, extraction outputs and ML exports."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from src.models.coordinate import RunCoordinate, validate_part
from src.models.state import EXPECTED_EXTRACTION_FILES, ExtractionStatus, LocalRawStatus

BAG_SUFFIXES = (".bag", ".mcap", ".db3")
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
INFLIGHT_SUFFIXES = (".active", ".tmp")
TRACKING_FILE = ".export_tracking.json"
_ENTRY_FIELDS: dict[str, tuple[type, ...]] = {
    "created_at": (str, type(None)),
    "source": (str, type(None)),
    "coordinates": (list,),
    "sample_count": (int,),
    "uploaded": (bool,),
    "uploaded_at": (str, type(None)),
}


class ExportTrackingError(ValueError):
    """The export tracking file is corrupt; the message names the file and the problem."""


class LocalStateService:
    """Inspect data_root/raw, data_root/processed and data_root/ml for one run at a time."""

    def __init__(self, data_root: Path) -> None:
        self.data_root = Path(data_root)
        self.raw_root = self.data_root / "raw"
        self.processed_root = self.data_root / "processed"
        self.ml_root = self.data_root / "ml"
        self.exports_root = self.ml_root / "exports"
        self.tracking_path = self.ml_root / TRACKING_FILE
        self._tracking_lock = threading.Lock()
        self._tracking_cache: tuple[tuple[int, int], dict[str, dict[str, Any]]] | None = None

    # -- raw bags -------------------------------------------------------------------------------

    def raw_path(self, coord: RunCoordinate | str) -> Path:
        """Return data_root/raw/<coordinate>."""
        return self.raw_root.joinpath(*_coordinate(coord).to_path_tuple())

    def processed_path(self, coord: RunCoordinate | str) -> Path:
        """Return data_root/processed/<coordinate>."""
        return self.processed_root.joinpath(*_coordinate(coord).to_path_tuple())

    def check_raw_downloaded(self, coord: RunCoordinate | str) -> LocalRawStatus:
        """Count the downloaded bag files of a run (ROS1 .bag, ROS2 .mcap/.db3), skipping temp files."""
        path = self.raw_path(coord)
        if not path.is_dir():
            return LocalRawStatus(downloaded=False, bag_count=0, bag_names=[], total_size=0, path=None)
        bags = sorted((rel, size) for rel, size in _walk_files(path) if rel.lower().endswith(BAG_SUFFIXES))
        return LocalRawStatus(
            downloaded=bool(bags),
            bag_count=len(bags),
            bag_names=[rel for rel, _ in bags],
            total_size=sum(size for _, size in bags),
            path=str(path),
        )

    # -- extraction -----------------------------------------------------------------------------

    def check_extracted(self, coord: RunCoordinate | str) -> ExtractionStatus:
        """Report which expected extraction outputs exist; complete means all of them."""
        path = self.processed_path(coord)
        present = [name for name in EXPECTED_EXTRACTION_FILES if (path / name).is_file()]
        return ExtractionStatus.from_present(present, path=str(path) if path.is_dir() else None)

    def get_extraction_output_info(self, coord: RunCoordinate | str) -> dict[str, Any]:
        """Return per expected output file: exists, size and mtime (ISO, UTC)."""
        path = self.processed_path(coord)
        files: dict[str, dict[str, Any]] = {}
        for name in EXPECTED_EXTRACTION_FILES:
            try:
                st = (path / name).stat()
            except OSError:
                files[name] = {"exists": False, "size": None, "mtime": None}
                continue
            files[name] = {
                "exists": True,
                "size": st.st_size,
                "mtime": datetime.fromtimestamp(st.st_mtime, tz=UTC).isoformat(),
            }
        return {
            "path": str(path),
            "extracted": all(f["exists"] for f in files.values()),
            "total_size": sum(f["size"] or 0 for f in files.values()),
            "files": files,
        }

    # -- ML exports -----------------------------------------------------------------------------

    def get_export_ids(self) -> list[str]:
        """Return export ids from the tracking file and the exports directory, sorted."""
        ids = set(self._tracking())
        try:
            entries = list(os.scandir(self.exports_root))
        except OSError:
            entries = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".") and _is_part(entry.name):
                ids.add(entry.name)
        return sorted(ids)

    def get_export_info(self, export_id: str) -> dict[str, Any]:
        """Return an export's tracking record plus whether its directory exists."""
        validate_part("export_id", export_id)
        entry = self._tracking().get(export_id)
        path = self.exports_root / export_id
        return {
            "export_id": export_id,
            "path": str(path),
            "exists": path.is_dir(),
            "tracked": entry is not None,
            # Copies, so callers cannot change the cached tracking data.
            **{k: list(v) if isinstance(v, list) else v for k, v in (entry or _default_entry()).items()},
        }

    def check_ml_exported(self, coord: RunCoordinate | str) -> dict[str, Any]:
        """Return the exports holding the run and how many samples each holds for it on disk."""
        coord = _coordinate(coord)
        key = coord.to_path_str()
        tracking = self._tracking()
        ids = {eid for eid, entry in tracking.items() if key in entry["coordinates"]}
        ids.update(eid for eid in self.get_export_ids() if self._export_run_path(eid, coord).is_dir())
        per_export = {eid: self._count_samples(self._export_run_path(eid, coord)) for eid in sorted(ids)}
        return {
            "exported": bool(per_export),
            "export_ids": sorted(per_export),
            "sample_count": sum(per_export.values()),
            "samples_per_export": per_export,
            "uploaded": any(tracking.get(eid, {}).get("uploaded", False) for eid in per_export),
        }

    def _export_run_path(self, export_id: str, coord: RunCoordinate) -> Path:
        """Return data_root/ml/exports/<export_id>/<coordinate>."""
        return self.exports_root.joinpath(validate_part("export_id", export_id), *coord.to_path_tuple())

    @staticmethod
    def _count_samples(path: Path) -> int:
        """Count images below path."""
        if not path.is_dir():
            return 0
        return sum(1 for rel, _ in _walk_files(path) if rel.lower().endswith(SAMPLE_SUFFIXES))

    def _tracking(self) -> dict[str, dict[str, Any]]:
        """Return the parsed tracking file ({} when absent), re-reading only when it changed."""
        try:
            st = self.tracking_path.stat()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ExportTrackingError(f"{self.tracking_path}: cannot read ({exc.strerror})") from exc
        stamp = (st.st_mtime_ns, st.st_size)
        with self._tracking_lock:
            if self._tracking_cache is not None and self._tracking_cache[0] == stamp:
                return self._tracking_cache[1]
            parsed = parse_tracking(self.tracking_path)
            self._tracking_cache = (stamp, parsed)
            return parsed


def parse_tracking(path: Path) -> dict[str, dict[str, Any]]:
    """Read and validate an export tracking file; raise ExportTrackingError naming it on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportTrackingError(f"{path}: cannot read ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportTrackingError(
            f"{path} is corrupt: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
        ) from exc
    if not isinstance(data, dict):
        raise ExportTrackingError(f"{path} is corrupt: expected an object of exports, got {type(data).__name__}")
    result: dict[str, dict[str, Any]] = {}
    for export_id, entry in data.items():
        try:
            result[validate_part("export_id", export_id)] = _parse_entry(entry)
        except ValueError as exc:
            raise ExportTrackingError(f"{path} is corrupt: export {export_id!r}: {exc}") from exc
    return result


def _parse_entry(entry: object) -> dict[str, Any]:
    """Validate one tracking entry and fill defaults for missing fields."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")
    parsed = _default_entry()
    for name, types in _ENTRY_FIELDS.items():
        if name not in entry:
            continue
        value = entry[name]
        # bool is an int subclass; a count of True is a shape error, not 1.
        if not isinstance(value, types) or (name == "sample_count" and isinstance(value, bool)):
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"{name} must be {expected}, got {type(value).__name__}")
        parsed[name] = value
    if parsed["sample_count"] < 0:
        raise ValueError("sample_count must not be negative")
    coordinates = []
    for item in parsed["coordinates"]:
        if not isinstance(item, str):
            raise ValueError(f"coordinates must hold strings, got {type(item).__name__}")
        coordinates.append(RunCoordinate.from_path(item).to_path_str())
    parsed["coordinates"] = coordinates
    return parsed


def _default_entry() -> dict[str, Any]:
    """Return the tracking fields of an export nobody recorded."""
    return {
        "created_at": None,
        "source": None,
        "coordinates": [],
        "sample_count": 0,
        "uploaded": False,
        "uploaded_at": None,
    }


def _walk_files(root: Path) -> Iterator[tuple[str, int]]:
    """Yield (posix path relative to root, size) of regular files, skipping dot-names and in-flight files."""
    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # vanished or unreadable mid-walk: report what is there
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.lower().endswith(INFLIGHT_SUFFIXES):
                continue
            # Symlinks are not followed: they could point outside the data root.
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), f"{prefix}{name}/"))
            elif entry.is_file(follow_symlinks=False):
                try:
                    yield f"{prefix}{name}", entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue


def _coordinate(coord: RunCoordinate | str) -> RunCoordinate:
    """Accept a RunCoordinate or its path string."""
    return coord if isinstance(coord, RunCoordinate) else RunCoordinate.from_path(coord)


def _is_part(name: str) -> bool:
    """Tell whether name passes validate_part."""
    try:
        validate_part("export_id", name)
    except ValueError:
        return False
    return True
