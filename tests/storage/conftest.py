"""Fixtures for the storage tests: a directory bucket and an emulated GCS bucket behind a proxy."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from src.storage import Bucket, open_bucket
from src.storage.testing import EmulatorStack, RecordingProxy
from tests.storage.helpers import FAST_RETRY, Backend


@pytest.fixture(scope="session")
def emulator_stack() -> Iterator[EmulatorStack]:
    """Run one emulator and proxy for the whole session (starting them costs ~0.1 s)."""
    with EmulatorStack() as stack:
        yield stack


@pytest.fixture
def gcs_stack(emulator_stack: EmulatorStack, monkeypatch: pytest.MonkeyPatch) -> EmulatorStack:
    """Give a test an empty emulated bucket, a clean proxy and STORAGE_EMULATOR_HOST pointing at it."""
    emulator_stack.reset()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_stack.url)
    return emulator_stack


@pytest.fixture
def proxy(gcs_stack: EmulatorStack) -> RecordingProxy:
    """Return the recording proxy in front of the emulator."""
    return gcs_stack.proxy


def _local_backend(root: Path) -> Backend:
    def open_(prefix: str) -> Bucket:
        return open_bucket(f"file://{root}/{prefix}".rstrip("/"))

    def seed(objects: Mapping[str, bytes]) -> None:
        for name, data in objects.items():
            path = root.joinpath(*name.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    return Backend("local", open_, seed)


def _gcs_backend(stack: EmulatorStack) -> Backend:
    def open_(prefix: str) -> Bucket:
        return open_bucket(f"gs://{stack.bucket}/{prefix}".rstrip("/"), retry=FAST_RETRY)

    return Backend("gcs", open_, stack.seed, stack)


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulator)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Parametrise a test over the directory backend and the emulated GCS backend."""
    if request.param == "local":
        return _local_backend(tmp_path / "bucket")
    return _gcs_backend(request.getfixturevalue("gcs_stack"))
