"""The bucket interface shared by the GCS and local-directory backends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, Protocol


class StorageError(Exception):
    """A storage operation failed; the message is fit for a user."""


class ObjectNotFound(StorageError):
    """The object does not exist."""


class PreconditionFailed(StorageError):
    """An upload with 'must not exist' met an existing object."""


class StoragePermissionDenied(StorageError):
    """The credentials may not do this."""


class StorageUnavailable(StorageError):
    """The bucket could not be reached (network, outage, throttling after retries)."""


# A NamedTuple, not a frozen dataclass: a listing builds a million of these, and the dataclass's
# constructor cost several times more (it was the parallel listing's CPU floor).
class ObjectInfo(NamedTuple):
    """Describe one stored object."""

    name: str  # full key relative to the bucket prefix, '/'-separated
    size: int
    updated: datetime | None = None
    crc32c: str | None = None  # base64, as GCS reports it
    md5: str | None = None  # base64, as GCS reports it
    generation: int | None = None


@dataclass(frozen=True)
class Listing:
    """One level of a delimited listing."""

    objects: list[ObjectInfo]
    prefixes: list[str]  # child prefixes, each ending in '/'


ProgressCallback = Callable[[int], None]  # called with bytes done since the last call


def validate_key(name: str) -> str:
    """Return name if it is a safe relative '/'-separated object key, else raise ValueError."""
    if not isinstance(name, str) or name == "":
        raise ValueError("object key must be a non-empty string")
    _check_chars(name, "object key")
    # Empty, '.' and '..' segments would alias other keys or escape the root on disk.
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"object key {name!r} has an empty, '.' or '..' segment")
    return name


def validate_prefix(prefix: str) -> str:
    """Return prefix if it is a safe listing prefix (may be '' or end mid-segment), else raise ValueError."""
    if not isinstance(prefix, str):
        raise ValueError("prefix must be a string")
    if prefix == "":
        return prefix
    _check_chars(prefix, "prefix")
    # The last segment may be partial ('cid1/reg'), or empty when prefix ends in '/'.
    *dirs, last = prefix.split("/")
    for part in dirs:
        if part in ("", ".", ".."):
            raise ValueError(f"prefix {prefix!r} has an empty, '.' or '..' segment")
    if last in (".", ".."):
        raise ValueError(f"prefix {prefix!r} ends in '.' or '..'")
    return prefix


def _check_chars(value: str, what: str) -> None:
    """Raise ValueError for absolute paths, backslashes and NUL."""
    if value.startswith("/"):
        raise ValueError(f"{what} {value!r} must be relative (no leading '/')")
    if "\\" in value:
        raise ValueError(f"{what} {value!r} must not contain a backslash")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL")


class Bucket(Protocol):
    """A flat object store addressed by '/'-separated keys."""

    url: str

    def list(self, prefix: str = "", delimiter: str | None = None) -> Listing:
        """List objects (and child prefixes when delimiter is given) under prefix."""
        ...

    def iter_objects(self, prefix: str = "", *, parallel: bool = True) -> Iterator[ObjectInfo]:
        """Yield every object under prefix, recursively (any order; parallel is only a hint)."""
        ...

    def stat(self, name: str) -> ObjectInfo:
        """Return the object's metadata or raise ObjectNotFound."""
        ...

    def download(
        self, name: str, dest: Path, progress: ProgressCallback | None = None, *, expected: ObjectInfo | None = None
    ) -> ObjectInfo:
        """Write the object to dest (the caller handles temp names); expected (from a listing) saves a lookup."""
        ...

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
        """Write bytes [start, end) of the object into the existing file dest at offset start (one slice)."""
        ...

    def upload(self, src: Path, name: str, *, overwrite: bool = False) -> ObjectInfo:
        """Store src as name; unless overwrite, raise PreconditionFailed if it exists."""
        ...

    def delete(self, name: str) -> None:
        """Remove the object or raise ObjectNotFound."""
        ...
