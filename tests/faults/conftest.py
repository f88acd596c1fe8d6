"""Fixtures for the fault tests: an emulated GCS bucket behind the fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from src.storage.testing import EmulatorStack


@pytest.fixture(scope="session")
def emulator_stack() -> Iterator[EmulatorStack]:
    """Run one emulator and proxy (both on 127.0.0.1) for the whole session."""
    with EmulatorStack() as stack:
        yield stack


@pytest.fixture
def gcs(emulator_stack: EmulatorStack, monkeypatch: pytest.MonkeyPatch) -> EmulatorStack:
    """Give a test an empty emulated bucket, a clean proxy and STORAGE_EMULATOR_HOST pointing at it."""
    emulator_stack.reset()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_stack.url)
    return emulator_stack
