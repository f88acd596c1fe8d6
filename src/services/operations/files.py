"""Local file helpers: checksums, temp names, atomic publishing, locks and the data-root fence."""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from src.jobs.base import JobError
from src.storage.base import ObjectInfo

CHUNK_SIZE = 1 << 20
PART_SUFFIX = ".part"
INFLIGHT_SUFFIXES = (".active", ".tmp")


@dataclass(frozen=True)
class Digest:
    """Size and checksums of a local file, encoded the way GCS reports them (base64)."""

    size: int
    crc32c: str
    md5: str | None = None


def file_digest(path: Path, *, md5: bool = False) -> Digest:
    """Read path once and return its size, crc32c and (if asked) md5."""
    crc = google_crc32c.Checksum()
    md5_hash = hashlib.md5(usedforsecurity=False) if md5 else None
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            crc.update(chunk)
            if md5_hash is not None:
                md5_hash.update(chunk)
            size += len(chunk)
    return Digest(
        size=size,
        crc32c=base64.b64encode(crc.digest()).decode("ascii"),
        md5=base64.b64encode(md5_hash.digest()).decode("ascii") if md5_hash is not None else None,
    )


def has_checksum(info: ObjectInfo) -> bool:
    """Tell whether info carries a checksum we can compare with."""
    return bool(info.crc32c or info.md5)


def needs_md5(info: ObjectInfo) -> bool:
    """Tell whether comparing with info needs an md5 (it only has md5, as composite-free legacy objects may)."""
    return not info.crc32c and bool(info.md5)


def same_content(digest: Digest, info: ObjectInfo) -> bool | None:
    """Compare a local digest with an object: True/False, or None when info has no usable checksum."""
    if digest.size != info.size:
        return False
    if info.crc32c:
        return digest.crc32c == info.crc32c
    if info.md5 and digest.md5:
        return digest.md5 == info.md5
    return None


def describe_checksum(info: ObjectInfo) -> str:
    """Return 'crc32c X' or 'md5 X' for messages."""
    return f"crc32c {info.crc32c}" if info.crc32c else f"md5 {info.md5}"


# -- temp names and publishing -------------------------------------------------------------------


def temp_path(final: Path) -> Path:
    """Return a unique hidden sibling of final ('.name.xxxxxxxx.part') to write into first."""
    return final.with_name(f".{final.name}.{secrets.token_hex(4)}{PART_SUFFIX}")


def is_part_name(name: str) -> bool:
    """Tell whether a file name is one of our partial downloads."""
    return name.startswith(".") and name.endswith(PART_SUFFIX)


def is_hidden_or_inflight(rel: str) -> bool:
    """Tell whether a '/'-separated name has a dot segment or an in-flight suffix (never data)."""
    return any(part.startswith(".") for part in rel.split("/")) or rel.lower().endswith(INFLIGHT_SUFFIXES)


def remove_leftover_parts(root: Path) -> list[Path]:
    """Delete '.*.part' files below root left by an interrupted run; return them (no symlinks followed)."""
    removed: list[Path] = []
    for directory, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            if is_part_name(name):
                path = Path(directory) / name
                if not path.is_symlink():
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def fsync_file(path: Path) -> None:
    """Flush a file's data to disk, so a rename never publishes an empty or short file after a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Persist renames in directory (best effort: some filesystems refuse fsync on directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_file(tmp: Path, final: Path) -> None:
    """Sync tmp, rename it to final (replacing atomically) and sync the directory entry."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_json_atomic(path: Path, text: str) -> None:
    """Write text to path via a synced hidden temp sibling and os.replace."""
    tmp = path.with_name(f".{path.name.lstrip('.')}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


# -- the data-root fence -------------------------------------------------------------------------


def check_inside(path: Path, root: Path, *, verb: str = "write") -> Path:
    """Return path if it resolves (symlinks followed) inside root, else raise JobError."""
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(os.path.realpath(root)):
        raise JobError(f"refusing to {verb} {path}: it resolves to {real}, outside the data root {root}")
    return path


def make_dirs(directory: Path, root: Path) -> Path:
    """Create directory (and parents) after checking, and check again once it exists."""
    check_inside(directory, root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise JobError(f"cannot create directory {directory}: a file is in the way") from None
    except OSError as err:
        raise JobError(f"cannot create directory {directory}: {err.strerror or err}") from err
    # A symlinked component could have appeared between the check and mkdir.
    return check_inside(directory, root)


def prune_empty_dirs(top: Path, stop: Path) -> None:
    """Remove empty directories below and including top, then empty parents up to (not incl.) stop."""
    if not top.is_dir() or top.is_symlink():
        return
    for directory, _dirs, _files in os.walk(top, topdown=False, followlinks=False):
        try:
            os.rmdir(directory)
        except OSError:
            continue  # not empty: keep it
    parent = top.parent
    while parent != stop and stop in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def remove_tree(path: Path) -> None:
    """Delete a directory tree we created (never following symlinks), ignoring errors."""
    shutil.rmtree(path, ignore_errors=True)


# -- locks ---------------------------------------------------------------------------------------


@contextmanager
def dir_lock(directory: Path, busy_message: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking flock on directory; raise JobError(busy_message) if taken."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise JobError(busy_message) from None
            raise
        yield
    finally:
        os.close(fd)  # closing releases the lock


def try_dir_lock(directory: Path) -> int | None:
    """Take an exclusive flock on directory without blocking; return the fd (close to release) or None."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on a (hidden) lock file, waiting for other holders."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
