"""Bucket access for gs:// and file:// URLs behind one small interface."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from src.storage.base import (
    Bucket,
    Listing,
    ObjectInfo,
    ObjectNotFound,
    PreconditionFailed,
    ProgressCallback,
    StorageError,
    StoragePermissionDenied,
    StorageUnavailable,
    validate_key,
    validate_prefix,
)
from src.storage.gcs import GcsBucket
from src.storage.local import LocalBucket

__all__ = [
    "Bucket",
    "GcsBucket",
    "Listing",
    "LocalBucket",
    "ObjectInfo",
    "ObjectNotFound",
    "PreconditionFailed",
    "ProgressCallback",
    "StorageError",
    "StoragePermissionDenied",
    "StorageUnavailable",
    "open_bucket",
    "validate_key",
    "validate_prefix",
]

# GCS bucket names: 3-63 chars (up to 222 with dots), lowercase letters, digits, '-', '_', '.'.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def open_bucket(url: str, **kwargs: Any) -> Bucket:
    """Open gs://bucket[/prefix] or file:///abs/path; extra kwargs go to the backend."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("bucket URL must be a non-empty string like gs://bucket/prefix or file:///abs/path")
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"unsupported bucket URL {url!r}: expected gs://bucket[/prefix] or file:///abs/path")
    scheme = scheme.lower()
    if scheme == "gs":
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET_NAME.match(bucket):
            raise ValueError(f"invalid GCS bucket name {bucket!r} in {url!r}")
        try:
            return GcsBucket(bucket, prefix, url=url, **kwargs)
        except ValueError as err:
            raise ValueError(f"invalid prefix in {url!r}: {err}") from None
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"file URL {url!r} must be file:///absolute/path (got host {parts.netloc!r}; "
                "a relative path needs the third slash and an absolute path)"
            )
        path = unquote(parts.path)
        if not path.startswith("/") or parts.query or parts.fragment:
            raise ValueError(f"file URL {url!r} must be file:///absolute/path")
        return LocalBucket(path, url=url, **kwargs)
    raise ValueError(f"unsupported bucket URL scheme {scheme!r} in {url!r}: use gs:// or file://")
