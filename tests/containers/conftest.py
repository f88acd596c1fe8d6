"""Container tests: a real Docker engine, images built once per session from the local debootstrap base.

Without an engine they skip locally and fail in CI (CI=true), which must run them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.containers.engine import docker, remove, unique
from tests.containers.images import APP_IMAGE, build_all


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder as a container test."""
    for item in items:
        if "tests/containers/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.containers)


def _engine_problem() -> str | None:
    if not shutil.which("docker"):
        return "no docker client on PATH (apt-get install docker.io)"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "'docker info' timed out"
    if info.returncode != 0:
        return f"no Docker engine answers ('docker info': {' '.join(info.stderr.split())[:200]})"
    if not shutil.which("debootstrap"):
        return "debootstrap is needed to build the local base image (apt-get install debootstrap)"
    return None


@pytest.fixture(scope="session")
def engine() -> None:
    """Require a Docker engine: skip without one locally, fail in CI."""
    problem = _engine_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; CI must run the container tests")
        pytest.skip(problem)


@dataclass(frozen=True)
class Images:
    """The images this session built, and how long each build took."""

    base: str
    app: str
    app_build_s: float


@pytest.fixture(scope="session")
def images(engine: None) -> Images:
    """Build the base (cached), the app image and the compose file's stand-ins once per session.

    When .ci/run's background prebuild holds the build lock, this waits for it and then only checks the cache.
    """
    base, app_build_s = build_all()
    return Images(base, APP_IMAGE, app_build_s)


@pytest.fixture(scope="session")
def compose_images(images: Images) -> Images:
    """Return the images once the compose file's stand-ins are built too."""
    return images


@pytest.fixture
def volume(engine: None) -> Iterator[str]:
    """Return a fresh named volume, removed afterwards."""
    name = unique("data")
    docker("volume", "create", name)
    yield name
    docker("volume", "rm", "-f", name, check=False)


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Collect container names to remove after the test."""
    names: list[str] = []
    yield names
    remove(*names)
