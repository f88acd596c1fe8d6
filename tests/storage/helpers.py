"""Helpers shared by the storage tests (kept out of conftest so tests can import them)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import google_crc32c
from google.cloud.storage.retry import DEFAULT_RETRY

from src.storage import Bucket
from tests.support.gcs import GcsTestBucket

# Real backoff starts at 1 s; tests only need to see that a retry happens.
FAST_RETRY = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05, multiplier=2).with_timeout(10)


def crc32c_of(data: bytes) -> str:
    """Return the CRC32C of data encoded the way GCS reports it."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode("ascii")


def make_tree(prefix: str = "") -> dict[str, bytes]:
    """Build ~200 objects shaped like cid/region/field/twid/lbid/timestamp/file, plus some at mid levels."""
    tree: dict[str, bytes] = {f"{prefix}index.json": b"{}"}
    for cid in ("c1", "c2"):
        tree[f"{prefix}{cid}/README.md"] = b"cid notes"
        for region in ("r1", "r2"):
            tree[f"{prefix}{cid}/{region}/region.json"] = b"{}"
            for field in ("f1", "f2", "f3"):
                tree[f"{prefix}{cid}/{region}/{field}/field.geojson"] = b"{}"
                for twid in ("t1", "t2"):
                    for stamp in ("20240101T000000", "20240102T000000", "20240103T000000", "20240104T000000"):
                        leaf = f"{prefix}{cid}/{region}/{field}/{twid}/lb1/{stamp}"
                        tree[f"{leaf}/run.bag"] = leaf.encode()
                        tree[f"{leaf}/labels.json"] = b"[]"
    return tree


@dataclass
class Backend:
    """One bucket implementation under test, with ways to open sub-prefixes and seed objects fast."""

    kind: str
    open: Callable[..., Bucket]  # '' opens the bucket root, 'a/b' opens URL .../a/b; kwargs go to GCS only
    seed: Callable[[Mapping[str, bytes]], None]  # full names relative to the bucket root
    gcs: GcsTestBucket | None = None

    @property
    def bucket(self) -> Bucket:
        """Return the bucket opened at its root."""
        return self.open("")
