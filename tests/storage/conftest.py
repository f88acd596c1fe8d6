"""Fixtures for the storage tests: a directory bucket and a fake-gcs-server bucket behind the fault proxy."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from src.storage import Bucket, open_bucket
from tests.storage.helpers import FAST_RETRY, Backend
from tests.support.fault_proxy import FaultProxy
from tests.support.gcs import GcsTestBucket


@pytest.fixture
def proxy(gcs: GcsTestBucket) -> FaultProxy:
    """Return the fault proxy in front of fake-gcs-server."""
    return gcs.proxy


def _local_backend(root: Path) -> Backend:
    def open_(prefix: str, **kwargs: object) -> Bucket:
        return open_bucket(f"file://{root}/{prefix}".rstrip("/"))

    def seed(objects: Mapping[str, bytes]) -> None:
        for name, data in objects.items():
            path = root.joinpath(*name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return Backend("local", open_, seed)


def _gcs_backend(gcs: GcsTestBucket) -> Backend:
    def open_(prefix: str, **kwargs: object) -> Bucket:
        return open_bucket(f"gs://{gcs.bucket}/{prefix}".rstrip("/"), retry=FAST_RETRY, **kwargs)

    return Backend("gcs", open_, gcs.seed, gcs)


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulator)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Parametrise a test over the directory backend and the fake-gcs-server backend."""
    if request.param == "local":
        return _local_backend(tmp_path / "bucket")
    return _gcs_backend(request.getfixturevalue("gcs"))
