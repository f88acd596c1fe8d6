"""Helpers for the operation tests: a world of buckets + data root, recording contexts, faulty buckets."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import google_crc32c
from cachelib import SimpleCache

from src.jobs.base import JobCancelled
from src.models import HIERARCHY_LEVELS
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.services.operations.transfer import SlicePolicy
from src.storage import Bucket, ObjectInfo, ProgressCallback
from tests.support.fault_proxy import FaultProxy
from tests.support.gcs import GcsTestBucket

RUN = "c1/r1/f1/t1/l1/2024-05-14T10-32-00"
MIB = 1 << 20


def crc32c_of(data: bytes) -> str:
    """Return the CRC32C of data encoded the way GCS reports it."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def tree_files(root: Path) -> dict[str, bytes]:
    """Return every regular file below root (including hidden ones) keyed by '/' relative path."""
    found: dict[str, bytes] = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def part_files(root: Path) -> list[str]:
    """Return the hidden '.part' files below root."""
    return [name for name in tree_files(root) if name.rsplit("/", 1)[-1].endswith(".part")]


@dataclass
class World:
    """Two buckets (local directories or emulated GCS prefixes), an inventory and a data root."""

    kind: str
    tmp: Path
    raw: Bucket
    ml: Bucket
    seed_raw: Callable[[Mapping[str, bytes]], None]
    seed_ml: Callable[[Mapping[str, bytes]], None]
    stack: GcsTestBucket | None = None
    data_root: Path = field(init=False)
    inventory: CloudInventoryService = field(init=False)
    local: LocalStateService = field(init=False)

    def __post_init__(self) -> None:
        self.data_root = self.tmp / "data"
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.inventory = CloudInventoryService(self.raw, self.ml, self.tmp / "state" / "snap.parquet", SimpleCache())
        self.local = LocalStateService(self.data_root)

    @property
    def proxy(self) -> FaultProxy:
        """Return the fault proxy in front of fake-gcs-server (GCS worlds only)."""
        assert self.stack is not None, "only the gcs backend has a proxy"
        return self.stack.proxy

    def ops(self, max_workers: int = 4, slicing: SlicePolicy | None = None) -> CloudOperationService:
        """Return the service under test."""
        return CloudOperationService(
            self.inventory, self.local, self.raw, self.ml, self.data_root, max_workers=max_workers, slicing=slicing
        )

    def refresh(self) -> None:
        """Rebuild the inventory from the buckets."""
        self.inventory.refresh_inventory()

    def read_raw(self, name: str) -> bytes:
        """Return an object of the raw bucket."""
        return _read(self.raw, name, self.tmp)

    def read_ml(self, name: str) -> bytes:
        """Return an object of the ML bucket."""
        return _read(self.ml, name, self.tmp)

    def media_names(self) -> list[str]:
        """Return the object names of the media downloads the proxy saw, in order."""
        names = []
        for request in self.proxy.requests:
            if request.param("alt") == "media":
                names.append(unquote(request.path.rsplit("/o/", 1)[1]))
        return names


def _read(bucket: Bucket, name: str, tmp: Path) -> bytes:
    """Download one object to a scratch file and return its bytes."""
    scratch = tmp / "scratch"
    scratch.mkdir(exist_ok=True)
    dest = scratch / f"obj-{threading.get_ident()}"
    bucket.download(name, dest)
    data = dest.read_bytes()
    dest.unlink()
    return data


def load_tree(root: Path) -> dict[str, bytes]:
    """Read a local bucket root into name -> bytes (what seeding fake-gcs-server needs)."""
    return tree_files(root)


class RecordingContext:
    """A JobContext that records calls and can fail on cue (thread-safe like a real runner's)."""

    job_id = "job-test"

    def __init__(
        self,
        *,
        crash_at_bytes: int | None = None,
        cancel_after_checks: int | None = None,
    ) -> None:
        self.crash_at_bytes = crash_at_bytes
        self.cancel_after_checks = cancel_after_checks
        self.updates: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self.checks = 0
        self._lock = threading.Lock()

    def progress(self, **values: Any) -> None:
        """Record progress; raise RuntimeError (a simulated crash) once bytes_done passes crash_at_bytes."""
        with self._lock:
            self.updates.append(values)
            done = values.get("bytes_done")
            if self.crash_at_bytes is not None and done is not None and done >= self.crash_at_bytes:
                raise RuntimeError("simulated crash")

    def log(self, line: str) -> None:
        """Record a log line."""
        with self._lock:
            self.lines.append(line)

    def check_cancelled(self) -> None:
        """Raise JobCancelled from the (cancel_after_checks + 1)-th check on."""
        with self._lock:
            self.checks += 1
            if self.cancel_after_checks is not None and self.checks > self.cancel_after_checks:
                raise JobCancelled("cancelled by test")

    def last(self, key: str) -> Any:
        """Return the last reported value of key."""
        return next((u[key] for u in reversed(self.updates) if u.get(key) is not None), None)


class WrappedBucket:
    """Delegate everything to an inner bucket; subclasses override what they distort."""

    def __init__(self, inner: Bucket) -> None:
        self.inner = inner
        self.url = inner.url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, prefix: str = "", delimiter: str | None = None) -> Any:
        return self.inner.list(prefix, delimiter)

    def iter_objects(self, prefix: str = "", *, parallel: bool = True) -> Iterator[ObjectInfo]:
        return self.inner.iter_objects(prefix, parallel=parallel)

    def stat(self, name: str) -> ObjectInfo:
        return self.inner.stat(name)

    def download(
        self, name: str, dest: Path, progress: ProgressCallback | None = None, *, expected: ObjectInfo | None = None
    ) -> ObjectInfo:
        return self.inner.download(name, dest, progress, expected=expected)

    def upload(self, src: Path, name: str, *, overwrite: bool = False) -> ObjectInfo:
        return self.inner.upload(src, name, overwrite=overwrite)

    def delete(self, name: str) -> None:
        self.inner.delete(name)


class CorruptingBucket(WrappedBucket):
    """Flip a byte of the downloaded file for the first `times` downloads of each name in names."""

    def __init__(self, inner: Bucket, names: set[str], times: int) -> None:
        super().__init__(inner)
        self.names = names
        self.remaining = dict.fromkeys(names, times)
        self.downloads: list[str] = []
        self._lock = threading.Lock()

    def download(
        self, name: str, dest: Path, progress: ProgressCallback | None = None, *, expected: ObjectInfo | None = None
    ) -> ObjectInfo:
        info = self.inner.download(name, dest, progress, expected=expected)
        with self._lock:
            self.downloads.append(name)
            corrupt = self.remaining.get(name, 0) > 0
            if corrupt:
                self.remaining[name] -= 1
        if corrupt:
            with open(dest, "r+b") as handle:
                first = handle.read(1)
                handle.seek(0)
                handle.write(bytes([first[0] ^ 0xFF]))
        return info


class StaleListingBucket(WrappedBucket):
    """Hide objects from listings, as a listing taken just before someone else uploaded would."""

    def iter_objects(self, prefix: str = "", *, parallel: bool = True) -> Iterator[ObjectInfo]:
        return iter(())


class FailingBucket(WrappedBucket):
    """Raise the given storage error from every download (and stat)."""

    def __init__(self, inner: Bucket, error: Exception) -> None:
        super().__init__(inner)
        self.error = error

    def download(
        self, name: str, dest: Path, progress: ProgressCallback | None = None, *, expected: ObjectInfo | None = None
    ) -> ObjectInfo:
        raise self.error

    def stat(self, name: str) -> ObjectInfo:
        raise self.error


def run_files(world: World, run: str = RUN) -> dict[str, bytes]:
    """Return the local files of a downloaded run."""
    return tree_files(world.data_root / "raw" / run)


def coordinates(frame: Any) -> list[str]:
    """Return the coordinate paths of an inventory runs frame."""
    return ["/".join(map(str, row)) for row in frame[list(HIERARCHY_LEVELS)].itertuples(index=False)]


def random_bytes(size: int, seed: int) -> bytes:
    """Return size deterministic pseudo-random bytes."""
    import random

    return random.Random(seed).randbytes(size)
