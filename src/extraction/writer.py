"""Write the outputs: streamed CSV and JSON files in a temp folder renamed into place when complete."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv

try:  # POSIX only; without it stale temp folders are simply left for a person to remove
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

CHUNK_ROWS = 65_536  # rows buffered per CSV before a write: bounded memory whatever the bag size
LOCK_NAME = ".lock"
UNLOCKED_GRACE_S = 60.0  # a temp folder without a lock file may be between its mkdir and its locking

FRAMES_SCHEMA = pa.schema(
    [
        ("bag", pa.string()),
        ("topic", pa.string()),
        ("stamp_ns", pa.int64()),
        ("receive_ns", pa.int64()),
        ("frame_index", pa.int64()),
    ]
)
_BOX_FIELDS = [
    ("class_id", pa.string()),
    ("score", pa.float64()),
    ("cx", pa.float64()),
    ("cy", pa.float64()),
    ("w", pa.float64()),
    ("h", pa.float64()),
]
_MESSAGE_FIELDS = [
    ("bag", pa.string()),
    ("message_index", pa.int64()),
    ("stamp_ns", pa.int64()),
    ("receive_ns", pa.int64()),
]
DETECTIONS_SCHEMA = pa.schema(_MESSAGE_FIELDS + _BOX_FIELDS)
TRACKING_SCHEMA = pa.schema([*_MESSAGE_FIELDS, ("track_id", pa.string()), *_BOX_FIELDS])


class CsvStream:
    """Collect rows as tuples and write them with pyarrow, CHUNK_ROWS at a time."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.pending: list[tuple[Any, ...]] = []  # appended to directly in hot loops
        self.rows = 0  # rows written so far, pending ones excluded
        self._file = path.open("wb")
        self._writer = pacsv.CSVWriter(self._file, schema)  # writes the header at once: empty files have it too

    def maybe_flush(self) -> None:
        """Write the pending rows when there are enough of them."""
        if len(self.pending) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows and clear them."""
        if not self.pending:
            return
        # Transposing in C (zip) beats appending to one list per column in the per-row loop.
        columns = zip(*self.pending, strict=True)
        arrays = [pa.array(column, type=fld.type) for column, fld in zip(columns, self.schema, strict=True)]
        self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
        self.rows += len(self.pending)
        self.pending = []

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        self._writer.close()
        self._file.close()

    def abort(self) -> None:
        """Close the file without writing what is pending."""
        with suppress(Exception):
            self._writer.close()
        self._file.close()


class JsonMessagesStream:
    """Write {head…, "messages": [one object per line…], tail…} without holding the messages."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] = path.open("w", encoding="utf-8")
        body = json.dumps(head, allow_nan=False)[1:-1]
        self._file.write("{" + (body + ", " if body else "") + '"messages": [')

    def add_text(self, text: str) -> None:
        """Append one message object already encoded as JSON."""
        self._file.write(("\n" if not self.count else ",\n") + text)
        self.count += 1

    def close(self, tail: dict[str, Any]) -> None:
        """Close the array, add the tail keys and close the file."""
        body = json.dumps(tail, allow_nan=False)[1:-1]
        self._file.write(("\n" if self.count else "") + "]" + (", " + body if body else "") + "}\n")
        self._file.close()

    def abort(self) -> None:
        """Close the file as it is."""
        self._file.close()


# Per-message JSON by template: twice as fast as json.dumps of dicts, and messages are the hot loop.
DETECTION_ITEM = '{"class_id": %s, "score": %s, "cx": %s, "cy": %s, "w": %s, "h": %s}'
TRACK_ITEM = '{"track_id": %s, ' + DETECTION_ITEM[1:]
# Without None among the numbers, %r formats them directly: repr is what json uses for floats.
DETECTION_ITEM_R = '{"class_id": %s, "score": %r, "cx": %r, "cy": %r, "w": %r, "h": %r}'
TRACK_ITEM_R = '{"track_id": %s, ' + DETECTION_ITEM_R[1:]
MESSAGE = '{"bag": %s, "message_index": %d, "stamp_ns": %d, "receive_ns": %d, "%s": [%s]}'
_QUOTED: dict[str, str] = {}  # class ids, track ids and bag names repeat: encode each once


def quote(text: str | None) -> str:
    """Return text as a JSON string (null for None)."""
    if text is None:
        return "null"
    quoted = _QUOTED.get(text)
    if quoted is None:
        if len(_QUOTED) >= 100_000:  # a bound, not a tuning: long runs have many track ids
            _QUOTED.clear()
        quoted = _QUOTED[text] = json.dumps(text)
    return quoted


def number(value: float | None) -> str:
    """Return a finite float (or None) as JSON; repr is what json itself uses for floats."""
    return "null" if value is None else repr(value)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write data as indented JSON."""
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


# -- the atomic output folder ---------------------------------------------------------------------


@contextmanager
def atomic_output_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temp folder beside out_dir; on success it replaces out_dir, on any failure it is removed."""
    out_dir = Path(os.path.abspath(out_dir))
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale(parent, out_dir.name)
    tmp = _make_dir(parent, f".{out_dir.name}.tmp-")
    lock_fd = _lock(tmp / LOCK_NAME)
    published = False
    try:
        yield tmp
        _publish(tmp, out_dir)
        published = True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if lock_fd is not None:
            if published:
                # Unlink while still holding the lock, so no cleaner ever sees it free.
                (out_dir / LOCK_NAME).unlink(missing_ok=True)
            os.close(lock_fd)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Rename tmp to out_dir; an existing out_dir is renamed aside first and deleted after."""
    if not out_dir.exists() and not out_dir.is_symlink():
        os.replace(tmp, out_dir)
        return
    old = _make_dir(out_dir.parent, f".{out_dir.name}.old-")
    os.replace(out_dir, old / out_dir.name)  # renames are atomic on one filesystem, a copy never happens
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(old / out_dir.name, out_dir)  # put the previous output back rather than lose it
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _make_dir(parent: Path, prefix: str) -> Path:
    """Create a new folder named prefix + random token, with the umask's permissions (mkdtemp's are 0700)."""
    while True:
        path = parent / f"{prefix}{secrets.token_hex(4)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def _lock(path: Path) -> int | None:
    """Create path and hold an exclusive lock on it for the life of the extraction."""
    if fcntl is None:  # pragma: no cover - Windows
        return None
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def remove_stale(parent: Path, name: str) -> list[Path]:
    """Remove temp folders of earlier extractions of name that were killed; return what was removed."""
    removed = []
    for path in parent.glob(f".{name}.*-*"):
        kind = path.name[len(name) + 2 :].split("-", 1)[0]
        if kind not in ("tmp", "old") or not path.is_dir() or path.is_symlink():
            continue
        if kind == "tmp" and not _abandoned(path):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _abandoned(tmp: Path) -> bool:
    """Return whether no live extraction holds tmp's lock (the kernel drops it when a process dies)."""
    if fcntl is None:  # pragma: no cover - Windows
        return False
    lock = tmp / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return time.time() - tmp.stat().st_mtime > UNLOCKED_GRACE_S
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: an extraction is writing there right now
    finally:
        os.close(fd)
    return True
