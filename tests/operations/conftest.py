"""Fixtures for the operation tests: a world per backend (local directories or fake-gcs-server) and demo data."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest

from src.demo import generate_demo
from src.demo.generate import DemoSummary
from src.storage import LocalBucket, open_bucket
from tests.operations.helpers import World, load_tree
from tests.storage.helpers import FAST_RETRY
from tests.support.gcs import GcsTestBucket


def _local_world(tmp_path: Path) -> World:
    roots = {label: tmp_path / "buckets" / label for label in ("raw", "ml")}

    def seeder(root: Path):
        def seed(objects: Mapping[str, bytes]) -> None:
            for name, data in objects.items():
                path = root.joinpath(*name.split("/"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

        return seed

    for root in roots.values():
        root.mkdir(parents=True)
    return World(
        "local",
        tmp_path,
        LocalBucket(roots["raw"]),
        LocalBucket(roots["ml"]),
        seeder(roots["raw"]),
        seeder(roots["ml"]),
    )


def _gcs_world(tmp_path: Path, stack: GcsTestBucket) -> World:
    def seeder(label: str):
        def seed(objects: Mapping[str, bytes]) -> None:
            stack.seed({f"{label}/{name}": data for name, data in objects.items()})

        return seed

    def bucket(label: str):
        return open_bucket(f"gs://{stack.bucket}/{label}", retry=FAST_RETRY)

    return World("gcs", tmp_path, bucket("raw"), bucket("ml"), seeder("raw"), seeder("ml"), stack)


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.emulator)])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    """Parametrise a test over directory buckets and a fresh, empty bucket on fake-gcs-server."""
    if request.param == "local":
        return _local_world(tmp_path)
    return _gcs_world(tmp_path, request.getfixturevalue("gcs"))


@pytest.fixture
def gcs_world(tmp_path: Path, gcs: GcsTestBucket) -> World:
    """Return a world on fake-gcs-server buckets only."""
    return _gcs_world(tmp_path, gcs)


@pytest.fixture
def local_world(tmp_path: Path) -> World:
    """Return a world on directory buckets only."""
    return _local_world(tmp_path)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    """Generate the tiny demo once: raw and ML bucket trees plus a data root with a local export."""
    root = tmp_path_factory.mktemp("demo")
    summary = generate_demo(root / "raw", root / "ml", root / "data", size="tiny")
    return root, summary


@pytest.fixture
def demo(world: World, demo_template: tuple[Path, DemoSummary]) -> DemoSummary:
    """Seed the world's buckets and data root with the demo and build the inventory."""
    root, summary = demo_template
    world.seed_raw(load_tree(root / "raw"))
    world.seed_ml(load_tree(root / "ml"))
    shutil.copytree(root / "data", world.data_root, dirs_exist_ok=True)
    world.refresh()
    return summary
