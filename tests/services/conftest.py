"""Fixtures for the service tests: hand-built bucket trees, a fake clock and a shared cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cachelib import FileSystemCache

from src.services.inventory import CloudInventoryService
from src.storage.base import ObjectInfo, StorageUnavailable
from src.storage.local import LocalBucket

RUN_A = "c1/r1/f1/t1/l1/2024-05-14T10-32-00"
RUN_B = "c1/r1/f1/t1/l1/20240101_000000"
RUN_C = "c1/r1/f1/t1/l1/garbage"
RUN_F = "c1/r1/f1/t1/l1/alpha"
RUN_G = "c1/r1/f1/t1/l1/20240514T103200"
RUN_D = "c1/r1/f2/t1/l1/2024-05-14"
RUN_E = "c2/r9/f1/t1/l1/2023-01-01T00:00:00"
LONG_PART = "x" * 129

# name -> size; every object below is created with that many bytes.
RAW_TREE: dict[str, int] = {
    f"{RUN_A}/a.bag": 5,
    f"{RUN_A}/bag_x/metadata.yaml": 10,
    f"{RUN_A}/bag_x/bag_x_0.mcap": 100,
    f"{RUN_A}/bag_x/bag_x_1.mcap": 200,
    f"{RUN_A}/c.db3": 7,
    f"{RUN_A}/d.bag.active": 50,  # in flight
    f"{RUN_A}/e.mcap.tmp": 60,  # in flight
    f"{RUN_A}/notes.txt": 1,  # other
    f"{RUN_B}/z.bag": 1,
    f"{RUN_C}/z.bag": 1,
    f"{RUN_F}/q.bag": 1,
    f"{RUN_D}/y.BAG": 3,
    "c1/r1/f1/t1/l1/stray.txt": 1,  # wrong depth: unrecognised
    f"c1/r1/f1/t1/{LONG_PART}/2024-01-01/a.bag": 1,  # invalid part: unrecognised
}
ML_TREE: dict[str, int] = {
    f"{RUN_A}/img/0001.jpg": 2,
    f"{RUN_A}/img/0001.json": 3,
    f"{RUN_A}/img/0002.PNG": 4,
    f"{RUN_A}/img/0002.txt": 5,
    f"{RUN_A}/img/0003.json": 6,  # no image of that stem: other
    f"{RUN_A}/img/0004.jpeg": 1,
    f"{RUN_A}/img/0004.jpeg.json": 1,  # sidecar named after the full image name
    f"{RUN_A}/upload.jpg.tmp": 9,  # in flight
    f"{RUN_E}/x.jpg": 9,
    f"{RUN_G}/s.png": 4,
    "c1/readme.md": 1,  # wrong depth: unrecognised
}


def write_tree(root: Path, tree: dict[str, int]) -> None:
    """Create each named file under root with its size in bytes."""
    for name, size in tree.items():
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)


class FakeClock:
    """A settable wall clock (epoch seconds)."""

    def __init__(self, now: float = 1_760_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SwitchableBucket:
    """Wrap a LocalBucket; fail listings with StorageUnavailable when down; count listings."""

    def __init__(self, inner: LocalBucket) -> None:
        self.inner = inner
        self.url = inner.url
        self.down = False
        self.listings = 0

    def iter_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self.listings += 1
        if self.down:
            raise StorageUnavailable(f"cannot reach {self.url}: 503 Service Unavailable\nretry later")
        return self.inner.iter_objects(prefix)


class Env:
    """One test environment: bucket roots, a snapshot path, a shared cache and a clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.raw_root = tmp_path / "buckets" / "raw"
        self.ml_root = tmp_path / "buckets" / "ml"
        self.raw_root.mkdir(parents=True, exist_ok=True)
        self.ml_root.mkdir(parents=True, exist_ok=True)
        self.snapshot = tmp_path / "state" / "snapshot.json"
        self.cache_dir = tmp_path / "shared-cache"
        self.clock = FakeClock()
        self.raw = SwitchableBucket(LocalBucket(self.raw_root))
        self.ml = SwitchableBucket(LocalBucket(self.ml_root))

    def cache(self) -> FileSystemCache:
        """Return a cache on the shared directory (each call is like another worker's client)."""
        return FileSystemCache(str(self.cache_dir), default_timeout=0)

    def service(self, **kwargs: object) -> CloudInventoryService:
        """Return a new service instance on the shared snapshot and cache."""
        return CloudInventoryService(
            self.raw,
            self.ml,
            self.snapshot,
            self.cache(),
            clock=self.clock,
            **kwargs,  # type: ignore[arg-type]
        )

    def add_raw(self, name: str, size: int = 1) -> None:
        """Create one raw object."""
        write_tree(self.raw_root, {name: size})


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """Return an environment with the standard raw and ML trees."""
    environment = Env(tmp_path)
    write_tree(environment.raw_root, RAW_TREE)
    write_tree(environment.ml_root, ML_TREE)
    return environment


@pytest.fixture
def empty_env(tmp_path: Path) -> Env:
    """Return an environment with empty buckets."""
    return Env(tmp_path)


@pytest.fixture
def service(env: Env) -> CloudInventoryService:
    """Return a service over the standard trees (not yet built)."""
    return env.service()


ServiceFactory = Callable[..., CloudInventoryService]
