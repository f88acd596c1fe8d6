"""Atomic writes and bucket-style walking of the local demo roots."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path(final: Path) -> Path:
    """Return the hidden temp sibling a file or folder is built under before its rename."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


def clear(path: Path) -> None:
    """Remove a stale file or folder left by an interrupted run."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_atomic(path: Path, data: bytes) -> int:
    """Write data to path via a temp sibling and os.replace; return the byte count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return len(data)


def publish(tmp: Path, final: Path) -> None:
    """Move a finished file or folder into place, replacing an older one."""
    if tmp.is_dir() and final.exists():
        # os.replace cannot swap onto a non-empty folder: move the old one aside first.
        old = final.with_name(f".{final.name}.old{PARTIAL_SUFFIX}")
        clear(old)
        os.replace(final, old)
        os.replace(tmp, final)
        clear(old)
    else:
        os.replace(tmp, final)


def tree_size(path: Path) -> int:
    """Return the bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def iter_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (bucket key, path) for every file under root, sorted by key, skipping temp partials."""
    root = Path(root)
    if not root.is_dir():
        return
    found = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            key = path.relative_to(root).as_posix()
            if any(part.startswith(".") and part.endswith(PARTIAL_SUFFIX) for part in key.split("/")):
                continue
            found.append((key, path))
    yield from sorted(found)
