"""Parallel, verified, cancellable transfers with progress reported to a JobContext."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from src.jobs.base import JobContext, JobError
from src.services.operations.files import (
    Digest,
    describe_checksum,
    file_digest,
    has_checksum,
    needs_md5,
    publish_file,
    same_content,
    temp_path,
)
from src.storage.base import (
    Bucket,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    StoragePermissionDenied,
    StorageUnavailable,
)

# Forward progress (and look for a cancel) every this many bytes: GCS hands over 8 KiB writes.
REPORT_EVERY = 256 * 1024
MIB = 1 << 20
# How often a sliced download's file is flushed while its slices arrive (see background_writeback).
WRITEBACK_INTERVAL_S = 0.25
T = TypeVar("T")
R = TypeVar("R")


class _Aborted(Exception):
    """Unwinds a worker because a sibling failed or the job was cancelled."""


@dataclass(frozen=True)
class SlicePolicy:
    """When and how to fetch one large object as concurrent ranged slices (settings BAGBOARD_SLICED_*)."""

    threshold: int = 64 * MIB  # objects of at least this size are sliced
    slice_size: int = 32 * MIB
    workers: int = 8  # slices in flight per object

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.slice_size < 1 or self.workers < 1:
            raise ValueError("slice threshold, size and workers must be positive")

    def ranges(self, size: int) -> list[tuple[int, int]] | None:
        """Return the [start, end) slices of an object of size bytes, or None to fetch it in one stream."""
        if size < self.threshold or size <= self.slice_size:
            return None
        return [(start, min(start + self.slice_size, size)) for start in range(0, size, self.slice_size)]


class Progress:
    """Aggregate a job's progress across worker threads and forward it to the context, serialised."""

    def __init__(self, ctx: JobContext, *, files_total: int, bytes_total: int) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.files_done = 0
        self.bytes_done = 0

    def start(self, message: str) -> None:
        """Report the totals before the first byte moves."""
        with self._lock:
            self._ctx.progress(
                files_done=0, files_total=self.files_total, bytes_done=0, bytes_total=self.bytes_total, message=message
            )

    def log(self, line: str) -> None:
        """Append a line to the job log (thread-safe)."""
        with self._lock:
            self._ctx.log(line)

    def check(self) -> None:
        """Raise JobCancelled if cancelled, or _Aborted when a sibling worker already failed."""
        if self.stop.is_set():
            raise _Aborted
        with self._lock:
            self._ctx.check_cancelled()

    def add_bytes(self, count: int) -> None:
        """Count bytes moved (negative to take back a failed attempt) and look for a cancel."""
        if self.stop.is_set():
            raise _Aborted
        with self._lock:
            self.bytes_done += count
            self._ctx.progress(bytes_done=self.bytes_done)
            self._ctx.check_cancelled()

    def file_done(self, message: str | None = None) -> None:
        """Count one finished file."""
        with self._lock:
            self.files_done += 1
            self._ctx.progress(files_done=self.files_done, bytes_done=self.bytes_done, message=message)

    def counter(self, stop: threading.Event | None = None) -> ByteCounter:
        """Return a progress callback for one transfer attempt (that also stops once stop is set)."""
        return ByteCounter(self, stop)


class ByteCounter:
    """A bucket progress callback: batches chunk sizes into Progress.add_bytes calls."""

    def __init__(self, progress: Progress, stop: threading.Event | None = None) -> None:
        self._progress = progress
        self._stop = stop
        self._reported = 0
        self._pending = 0

    def __call__(self, count: int) -> None:
        if self._stop is not None and self._stop.is_set():
            raise _Aborted
        self._pending += count
        if self._pending >= REPORT_EVERY:
            self.flush()

    def flush(self) -> None:
        """Report bytes not yet reported."""
        pending, self._pending = self._pending, 0
        self._reported += pending
        if pending:
            self._progress.add_bytes(pending)

    def rewind(self) -> None:
        """Take back what this attempt reported (its file is being fetched again or abandoned)."""
        reported, self._reported, self._pending = self._reported, 0, 0
        if reported:
            self._progress.add_bytes(-reported)


def run_parallel(
    items: Sequence[T],
    work: Callable[[T], R],
    max_workers: int,
    progress: Progress,
    *,
    stop: threading.Event | None = None,
    name: str = "transfer",
) -> list[R]:
    """Run work on every item on a bounded pool; on the first failure stop the rest and re-raise it.

    stop is what a failure sets (default: the whole job's); the slices of one file pass their own,
    so a slice that fails stops its siblings and leaves the decision about the file to the caller.
    """
    if not items:
        return []
    stop = progress.stop if stop is None else stop
    results: list[R | None] = [None] * len(items)
    first: BaseException | None = None
    aborted = False
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items))), thread_name_prefix=name) as pool:
        futures: dict[Future[R], int] = {
            pool.submit(_run_one, work, item, progress, stop): i for i, item in enumerate(items)
        }
        try:
            for future in as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except (_Aborted, CancelledError):
                    aborted = True
                    continue
                except BaseException as err:
                    if first is None:
                        first = err
                        _stop_all(futures, stop)
        except BaseException:
            # Interrupted while waiting (e.g. KeyboardInterrupt): stop the workers before leaving.
            _stop_all(futures, stop)
            raise
    if first is not None:
        raise first
    if aborted:
        raise _Aborted  # stopped from outside (the job's other files failed): unwind, finish nothing
    return results  # type: ignore[return-value]  # every slot is filled when nothing failed


def _run_one(work: Callable[[T], R], item: T, progress: Progress, stop: threading.Event) -> R:
    """Look for a cancel (or a failed sibling) between files or slices, then do one item."""
    if stop.is_set():
        raise _Aborted
    progress.check()
    return work(item)


def _stop_all(futures: dict[Future[R], int], stop: threading.Event) -> None:
    """Make running workers stop at their next chunk and drop those not started."""
    stop.set()
    for future in futures:
        future.cancel()


def fetch_verified(
    bucket: Bucket,
    label: str,
    name: str,
    final: Path,
    expected: ObjectInfo,
    progress: Progress,
    slicing: SlicePolicy | None = None,
) -> Digest:
    """Download name to final via a hidden temp file, verify its checksum and rename it into place.

    Objects the slicing policy calls large come as concurrent ranged slices written into the temp
    file at their offsets. A checksum mismatch (ours, or the client's own crc32c check) removes the
    temp file and tries once more; a second mismatch fails with a JobError naming the file.
    """
    ranges = slicing.ranges(expected.size) if slicing is not None else None
    for attempt in (1, 2):
        tmp = temp_path(final)
        counters: list[ByteCounter] = []
        try:
            try:
                if ranges is None:
                    counters.append(progress.counter())
                    reported = bucket.download(name, tmp, progress=counters[0], expected=expected)
                    counters[0].flush()
                else:
                    assert slicing is not None
                    reported = _fetch_slices(bucket, name, tmp, expected, ranges, slicing.workers, progress, counters)
            except (ObjectNotFound, StoragePermissionDenied, StorageUnavailable) as err:
                raise storage_job_error(err, label, bucket, name) from err
            except StorageError as err:
                # GcsBucket reports a failed crc32c check of the stream as a plain StorageError.
                if attempt == 1:
                    _rewind(counters)
                    progress.log(f"retrying {name}: {one_line(str(err))}")
                    continue
                raise storage_job_error(err, label, bucket, name) from err
            reference = _reference_info(bucket, name, expected, reported)
            digest = file_digest(tmp, md5=needs_md5(reference))
            if not same_content(digest, reference):
                _rewind(counters)
                detail = f"expected {reference.size} bytes with {describe_checksum(reference)}, got {digest.size} bytes"
                if attempt == 1:
                    progress.log(f"checksum mismatch for {name} ({detail}); retrying")
                    continue
                raise JobError(
                    f"checksum mismatch for {name} from the {label} bucket after a retry ({detail});"
                    " if it changed since the inventory was built, refresh the inventory and try again"
                )
            publish_file(tmp, final)
            return digest
        except OSError as err:
            raise JobError(f"cannot write {final}: {err.strerror or err}") from err
        finally:
            tmp.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _fetch_slices(
    bucket: Bucket,
    name: str,
    tmp: Path,
    expected: ObjectInfo,
    ranges: list[tuple[int, int]],
    workers: int,
    progress: Progress,
    counters: list[ByteCounter],
) -> ObjectInfo:
    """Fetch every slice of name into tmp (sized up front) on a pool; the caller verifies the whole file."""
    allocate(tmp, expected.size)
    stop = threading.Event()  # one failed slice stops its siblings, not the other files

    def fetch(span: tuple[int, int]) -> None:
        counter = progress.counter(stop)
        counters.append(counter)
        bucket.download_range(name, tmp, span[0], span[1], counter, expected=expected)
        counter.flush()

    with background_writeback(tmp):
        run_parallel(ranges, fetch, workers, progress, stop=stop, name="slice")
    return expected


@contextmanager
def background_writeback(path: Path, every_s: float = WRITEBACK_INTERVAL_S) -> Iterator[None]:
    """Flush path's dirty pages to disk every few tenths of a second on a helper thread while the body runs.

    The disk then writes while the network still delivers, instead of one fsync of the whole file before the
    rename (1.7 s for 1 GiB here, half the time of the download itself); the download threads never wait on it.
    """
    done = threading.Event()
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def flush() -> None:
        while not done.wait(every_s):
            try:
                os.fdatasync(fd)
            except OSError:
                return  # the fsync before the rename reports it, on the job's own thread

    flusher = threading.Thread(target=flush, name="slice-writeback", daemon=True)
    flusher.start()
    try:
        yield
    finally:
        done.set()
        flusher.join()
        os.close(fd)


def allocate(path: Path, size: int) -> None:
    """Create path with size bytes reserved, so a full disk fails now rather than mid-download."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            os.ftruncate(fd, size)  # a filesystem without fallocate: a sparse file will do
    finally:
        os.close(fd)


def _rewind(counters: list[ByteCounter]) -> None:
    """Take back the bytes a failed attempt reported."""
    for counter in counters:
        counter.rewind()


def _reference_info(bucket: Bucket, name: str, expected: ObjectInfo, reported: ObjectInfo) -> ObjectInfo:
    """Return what to verify against: the planned listing's checksum, else the object's own."""
    if has_checksum(expected):
        return expected
    # Local listings carry no checksum; download() reports the object's (GCS: its metadata, local:
    # computed while reading), which saves stat()'s second full read. stat() is the last resort.
    if has_checksum(reported):
        return reported
    try:
        info = bucket.stat(name)
    except StorageError as err:
        raise storage_job_error(err, "source", bucket, name) from err
    if not has_checksum(info):
        raise JobError(f"cannot verify {name}: {bucket.url} reports no checksum for it")
    return info


def storage_job_error(err: StorageError, label: str, bucket: Bucket, name: str | None = None) -> JobError:
    """Map a storage error to a one-line JobError naming the bucket (and object)."""
    url = getattr(bucket, "url", "?")
    detail = one_line(str(err))
    what = f" ({name})" if name and name not in detail else ""
    if isinstance(err, StoragePermissionDenied):
        return JobError(f"permission denied on the {label} bucket {url}{what}: {detail}")
    if isinstance(err, ObjectNotFound):
        return JobError(f"not found in the {label} bucket {url}{what}: {detail}; refresh the inventory and retry")
    if isinstance(err, StorageUnavailable):
        return JobError(f"the {label} bucket {url} is unavailable{what}: {detail}")
    return JobError(f"{label} bucket {url} failed{what}: {detail}")


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace to one line and cut it at limit characters."""
    return " ".join(text.split())[:limit]
