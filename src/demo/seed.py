"""Seed the configured buckets with demo data: locally in place, or through the bucket API."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from src.demo.files import iter_files
from src.demo.generate import DemoSummary, generate_demo
from src.storage import Bucket, open_bucket

UPLOAD_WORKERS = 16


def local_root(url: str) -> Path | None:
    """Return the directory behind a file:// bucket URL, or None for other schemes."""
    return Path(url.removeprefix("file://")) if url.startswith("file://") else None


def seed_buckets(
    raw_url: str,
    ml_url: str,
    data_root: Path,
    *,
    size: str = "small",
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Generate demo data into the raw and ML buckets and the local data root."""
    raw_bucket, ml_bucket = open_bucket(raw_url), open_bucket(ml_url)  # validates both URLs first
    raw_dir, ml_dir = local_root(raw_url), local_root(ml_url)
    if raw_dir and ml_dir:
        return generate_demo(raw_dir, ml_dir, data_root, size=size, seed=seed, progress=progress)
    with tempfile.TemporaryDirectory(prefix="bagboard-demo-") as tmp:
        staging = Path(tmp)
        summary = generate_demo(
            raw_dir or staging / "raw",
            ml_dir or staging / "ml",
            data_root,
            size=size,
            seed=seed,
            progress=progress,
        )
        if raw_dir is None:
            upload_tree(staging / "raw", raw_bucket, progress)
        if ml_dir is None:
            upload_tree(staging / "ml", ml_bucket, progress)
    return summary


def upload_tree(root: Path, bucket: Bucket, progress: Callable[[str], None] | None = None) -> int:
    """Upload every file under root to bucket (overwriting: demo data is regenerated wholesale)."""
    files = list(iter_files(root))
    if progress:
        progress(f"uploading {len(files)} files to {bucket.url}")
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS) as pool:
        list(pool.map(lambda item: bucket.upload(item[1], item[0], overwrite=True), files))
    return len(files)


def create_emulator_buckets(*urls: str) -> list[str]:
    """Create the gs:// buckets of urls on the emulator (STORAGE_EMULATOR_HOST) unless they exist; return new ones."""
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        raise ValueError("--create-buckets works only against an emulator: set STORAGE_EMULATOR_HOST")
    from google.api_core.exceptions import Conflict

    from src.storage.gcs import default_client

    client, created = default_client(), []
    for name in dict.fromkeys(urlparse(url).netloc for url in urls if url.startswith("gs://")):
        try:
            client.create_bucket(name)
            created.append(name)
        except Conflict:
            pass  # already there: seeding again overwrites the demo objects
    return created
