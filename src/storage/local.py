"""A local directory that behaves like a bucket, for file:///abs/path URLs."""

from __future__ import annotations

import base64
import errno
import os
import secrets
import stat as stat_module
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import google_crc32c

from src.storage.base import (
    Listing,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    ProgressCallback,
    StorageError,
    StoragePermissionDenied,
    validate_key,
    validate_prefix,
)

CHUNK_SIZE = 1 << 20
# O_NOFOLLOW: a symlink is not an object (listing skips them), so reading one must fail too.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def is_temp_name(segment: str) -> bool:
    """Tell whether a file name is an in-flight upload ('.<anything>.tmp')."""
    return segment.startswith(".") and segment.endswith(".tmp")


def crc32c_b64(checksum: google_crc32c.Checksum) -> str:
    """Encode a running CRC32C the way GCS reports it (base64 of 4 big-endian bytes)."""
    return base64.b64encode(checksum.digest()).decode("ascii")


class LocalBucket:
    """Store objects as files under a root directory; keys map to relative paths."""

    def __init__(self, root: str | os.PathLike[str], *, url: str | None = None) -> None:
        path = Path(root)
        if not path.is_absolute():
            raise ValueError(f"local bucket root must be an absolute path, got {str(root)!r}")
        self.root = path
        self.url = url or f"file://{path}"

    def __repr__(self) -> str:
        return f"LocalBucket({self.url!r})"

    # -- listing ---------------------------------------------------------------------------------

    def list(self, prefix: str = "", delimiter: str | None = None) -> Listing:
        """List objects (and child prefixes when delimiter is '/') under prefix, sorted by name."""
        if delimiter is None:
            return Listing(objects=list(self._walk(prefix, recursive=True)), prefixes=[])
        if delimiter != "/":
            raise ValueError(f"local buckets only support the '/' delimiter, got {delimiter!r}")
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        for key, entry, is_dir in self._children(prefix):
            if not is_dir:
                objects.append(self._info_from_entry(key, entry))
            # GCS only reports a prefix when some object lives below it; mirror that.
            elif self._has_objects(Path(entry.path)):
                prefixes.append(key + "/")
        return Listing(objects=objects, prefixes=prefixes)

    def iter_objects(self, prefix: str = "", *, parallel: bool = True) -> Iterator[ObjectInfo]:
        """Yield every object under prefix in name order; parallel is ignored (disk is local)."""
        del parallel
        return self._walk(prefix, recursive=True)

    def _walk(self, prefix: str, *, recursive: bool) -> Iterator[ObjectInfo]:
        """Yield objects under prefix depth-first, which is name order given the sort key."""
        validate_prefix(prefix)
        dir_key, _, partial = prefix.rpartition("/")
        with _os_errors(self.url):
            yield from self._walk_dir(dir_key, partial, recursive=recursive)

    def _walk_dir(self, dir_key: str, partial: str, *, recursive: bool) -> Iterator[ObjectInfo]:
        """Yield objects below dir_key whose next segment starts with partial."""
        for key, entry, is_dir in self._scan(dir_key, partial):
            if not is_dir:
                yield self._info_from_entry(key, entry)
            elif recursive:
                yield from self._walk_dir(key, "", recursive=True)

    def _children(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str], bool]]:
        """Yield (key, entry, is_dir) for the direct children matching prefix, in name order."""
        validate_prefix(prefix)
        dir_key, _, partial = prefix.rpartition("/")
        with _os_errors(self.url):
            yield from self._scan(dir_key, partial)

    def _scan(self, dir_key: str, partial: str) -> Iterator[tuple[str, os.DirEntry[str], bool]]:
        """Yield (key, entry, is_dir) for regular files and real dirs in dir_key starting with partial."""
        directory = self.root.joinpath(*dir_key.split("/")) if dir_key else self.root
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return  # a missing root or prefix lists as empty, like an empty bucket
        self._check_inside(directory)
        kept: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            name = entry.name
            # Dot-temp files are uploads in flight; backslash names cannot be addressed as keys.
            if not name.startswith(partial) or is_temp_name(name) or "\\" in name:
                continue
            # Symlinks are skipped: following them could leave the root.
            if entry.is_dir(follow_symlinks=False):
                kept.append((name + "/", entry, True))
            elif entry.is_file(follow_symlinks=False):
                kept.append((name, entry, False))
        # Sorting dirs as 'name/' makes depth-first order equal GCS's lexicographic key order.
        kept.sort(key=lambda item: item[0])
        base = dir_key + "/" if dir_key else ""
        for _sort_name, entry, is_dir in kept:
            yield base + entry.name, entry, is_dir

    def _has_objects(self, directory: Path) -> bool:
        """Tell whether any regular, non-temp file lives below directory (stops at the first)."""
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError:
            return False
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and not is_temp_name(entry.name):
                return True
        return any(self._has_objects(Path(entry.path)) for entry in entries if entry.is_dir(follow_symlinks=False))

    def _info_from_entry(self, key: str, entry: os.DirEntry[str]) -> ObjectInfo:
        """Describe a listed file without hashing it (listing must stay cheap)."""
        return _info(key, entry.stat(follow_symlinks=False), crc32c=None)

    # -- single objects --------------------------------------------------------------------------

    def stat(self, name: str) -> ObjectInfo:
        """Return the object's metadata, hashing it for crc32c, or raise ObjectNotFound."""
        path = self._object_path(name)
        with _os_errors(self.url), self._open_object(name, path) as fd:
            checksum = google_crc32c.Checksum()
            while chunk := os.read(fd, CHUNK_SIZE):
                checksum.update(chunk)
            return _info(name, os.fstat(fd), crc32c=crc32c_b64(checksum))

    def download(
        self, name: str, dest: Path, progress: ProgressCallback | None = None, *, expected: ObjectInfo | None = None
    ) -> ObjectInfo:
        """Copy the object to dest, reporting progress per chunk; remove dest again on failure."""
        del expected  # a local read costs no round trip to save
        path = self._object_path(name)
        with _os_errors(self.url), self._open_object(name, path) as fd:
            st = os.fstat(fd)
            checksum = google_crc32c.Checksum()
            try:
                with open(dest, "wb") as out:
                    while chunk := os.read(fd, CHUNK_SIZE):
                        checksum.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except BaseException:
                Path(dest).unlink(missing_ok=True)
                raise
            return _info(name, st, crc32c=crc32c_b64(checksum))

    def download_range(
        self,
        name: str,
        dest: Path,
        start: int,
        end: int,
        progress: ProgressCallback | None = None,
        *,
        expected: ObjectInfo | None = None,
    ) -> None:
        """Write bytes [start, end) of the object into the existing file dest at offset start."""
        del expected  # a file has one version
        path = self._object_path(name)
        with _os_errors(self.url), self._open_object(name, path) as fd, open(dest, "r+b") as out:
            out.seek(start)
            offset = start
            while offset < end and (chunk := os.pread(fd, min(CHUNK_SIZE, end - offset), offset)):
                out.write(chunk)
                offset += len(chunk)
                if progress is not None:
                    progress(len(chunk))
        if offset != end:
            raise StorageError(f"{name} in {self.url} is shorter than expected: it ends at {offset}, not {end}")

    def upload(self, src: Path, name: str, *, overwrite: bool = False) -> ObjectInfo:
        """Store src as name atomically; unless overwrite, raise PreconditionFailed if it exists."""
        final = self._object_path(name)
        with _os_errors(self.url):
            tmp, st, crc = self._write_temp(Path(src), final)
            try:
                if overwrite:
                    os.replace(tmp, final)
                else:
                    # link() refuses an existing target atomically, unlike rename().
                    try:
                        os.link(tmp, final)
                    except FileExistsError:
                        raise PreconditionFailed(f"{name} already exists in {self.url}") from None
                _fsync_dir(final.parent)
            finally:
                tmp.unlink(missing_ok=True)
        return _info(name, st, crc32c=crc)

    def _write_temp(self, src: Path, final: Path) -> tuple[Path, os.stat_result, str]:
        """Copy src to a fsynced dot-temp file next to final; return it with its stat and crc32c."""
        if final.is_dir():
            raise StorageError(f"cannot store {final.name}: a prefix of that name exists in {self.url}")
        with open(src, "rb") as inp:
            for _attempt in range(3):
                self._make_parent(final)
                tmp = final.parent / f".{final.name}.{secrets.token_hex(6)}.tmp"
                try:
                    # 0o666 lets the umask decide permissions, as for any other new file.
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                    break
                except FileNotFoundError:
                    continue  # a concurrent delete pruned the empty parent; recreate it
            else:
                raise StorageError(f"cannot create a temporary file for {final.name} in {self.url}")
            try:
                checksum = google_crc32c.Checksum()
                with os.fdopen(fd, "wb") as out:
                    while chunk := inp.read(CHUNK_SIZE):
                        checksum.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                    # Link and rename keep the inode, so this stat describes the final object.
                    st = os.fstat(out.fileno())
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        return tmp, st, crc32c_b64(checksum)

    def delete(self, name: str) -> None:
        """Remove the object and any directories it leaves empty, or raise ObjectNotFound."""
        path = self._object_path(name)
        with _os_errors(self.url):
            try:
                if not _is_regular(os.lstat(path)):
                    raise ObjectNotFound(f"{name} not found in {self.url}")
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError):
                raise ObjectNotFound(f"{name} not found in {self.url}") from None
            self._prune(path.parent)

    # -- helpers ---------------------------------------------------------------------------------

    def _object_path(self, name: str) -> Path:
        """Map a validated key to its path below the root."""
        validate_key(name)
        parts = name.split("/")
        if any(is_temp_name(part) for part in parts):
            raise ValueError(f"object key {name!r} looks like a temporary upload ('.*.tmp')")
        return self.root.joinpath(*parts)

    def _check_inside(self, path: Path) -> None:
        """Refuse paths that resolve outside the root (e.g. through a symlinked directory)."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(path)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise StoragePermissionDenied(f"{path} resolves outside {self.url}; refusing to touch it")

    @contextmanager
    def _open_object(self, name: str, path: Path) -> Iterator[int]:
        """Open an object for reading as a raw fd, mapping absence to ObjectNotFound."""
        self._check_inside(path.parent)
        try:
            fd = os.open(path, _READ_FLAGS)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectNotFound(f"{name} not found in {self.url}") from None
        except OSError as err:
            if err.errno == errno.ELOOP:  # a symlink, which is not an object
                raise ObjectNotFound(f"{name} not found in {self.url}") from None
            raise
        try:
            if not _is_regular(os.fstat(fd)):
                raise ObjectNotFound(f"{name} not found in {self.url}")
            yield fd
        finally:
            os.close(fd)

    def _make_parent(self, final: Path) -> None:
        """Create final's parent directories, refusing any that resolve outside the root."""
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise StorageError(f"cannot store {final.name}: a parent path is an object in {self.url}") from None
        self._check_inside(final.parent)

    def _prune(self, directory: Path) -> None:
        """Remove empty directories from directory up to (not including) the root."""
        root = self.root
        while directory != root and root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or raced with an upload): stop here
            directory = directory.parent


def _info(name: str, st: os.stat_result, *, crc32c: str | None) -> ObjectInfo:
    """Build ObjectInfo from a stat result; generation is the mtime in nanoseconds."""
    return ObjectInfo(
        name=name,
        size=st.st_size,
        updated=datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC),
        crc32c=crc32c,
        md5=None,
        generation=st.st_mtime_ns,
    )


def _is_regular(st: os.stat_result) -> bool:
    """Tell whether a stat result describes a regular file."""
    return stat_module.S_ISREG(st.st_mode)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename or link by syncing the directory entry (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the data itself is synced
    finally:
        os.close(fd)


@contextmanager
def _os_errors(url: str) -> Iterator[None]:
    """Turn OS errors other than absence into the storage exceptions a user can act on."""
    try:
        yield
    except (StorageError, ValueError, FileNotFoundError):
        raise
    except PermissionError as err:
        raise StoragePermissionDenied(f"permission denied on {url}: {err.strerror} ({err.filename})") from err
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise StorageError(f"no space left on the device holding {url}") from err
        raise StorageError(f"cannot access {url}: {err.strerror or err}") from err
