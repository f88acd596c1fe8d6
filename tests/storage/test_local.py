"""Directory-backend specifics: containment, atomic uploads, temp files and symlinks."""

from __future__ import annotations

import os
import tempfile
import threading
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from src.storage import LocalBucket, ObjectNotFound, PreconditionFailed, StorageError, open_bucket
from src.storage.local import CHUNK_SIZE


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Return a (not yet existing) bucket root."""
    return tmp_path / "bucket"


@pytest.fixture
def bucket(root: Path) -> LocalBucket:
    """Return a directory bucket on root."""
    return LocalBucket(root)


def test_relative_root_is_rejected() -> None:
    with pytest.raises(ValueError, match="absolute"):
        LocalBucket("relative/dir")


def test_listing_skips_temp_files_and_symlinks(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "a" / "run.bag").write_bytes(b"x")
    (root / "a" / ".run.bag.1234.tmp").write_bytes(b"partial")
    (root / "only-temp").mkdir()
    (root / "only-temp" / ".x.tmp").write_bytes(b"partial")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bag").write_bytes(b"secret")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "a" / "filelink.bag").symlink_to(outside / "secret.bag")

    assert [o.name for o in bucket.iter_objects()] == ["a/run.bag"]
    assert bucket.list("", delimiter="/").prefixes == ["a/"]
    assert [o.name for o in bucket.list("a/", delimiter="/").objects] == ["a/run.bag"]


def test_temp_looking_keys_are_rejected(bucket: LocalBucket, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")

    with pytest.raises(ValueError, match="temporary"):
        bucket.upload(src, "a/.hidden.tmp")


def test_symlinked_directory_cannot_be_used_to_escape(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bag").write_bytes(b"secret")
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    src = tmp_path / "src"
    src.write_bytes(b"x")

    with pytest.raises(StorageError, match="outside"):
        bucket.stat("link/secret.bag")
    with pytest.raises(StorageError, match="outside"):
        bucket.upload(src, "link/new.bag")
    with pytest.raises(StorageError, match="outside"):
        bucket.download("link/secret.bag", tmp_path / "out")
    with pytest.raises(StorageError, match="outside"):
        bucket.list("link/")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.bag"]


def test_symlinked_file_is_not_an_object(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    root.mkdir()
    (tmp_path / "target").write_bytes(b"x")
    (root / "link.bag").symlink_to(tmp_path / "target")

    with pytest.raises(ObjectNotFound):
        bucket.stat("link.bag")


@settings(max_examples=150, deadline=None)
@given(key=st.lists(st.sampled_from(["a", "b", ".", "/", "\\", "\x00", "..", ".tmp", "é"]), max_size=8).map("".join))
def test_no_key_writes_outside_the_root(key: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        src = base / "src"
        src.write_bytes(b"payload")
        bucket = LocalBucket(root)
        try:
            info = bucket.upload(src, key)
        except ValueError:
            return
        assert info.name == key
        written = [p for p in base.rglob("*") if p.is_file() and p != src]
        assert written == [root.joinpath(*key.split("/"))]
        assert bucket.stat(key).size == len(b"payload")


def test_upload_is_atomic_and_leaves_no_temp_files(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x" * 10)
    results: list[str] = []

    def attempt() -> None:
        try:
            bucket.upload(src, "race/run.bag")
            results.append("stored")
        except PreconditionFailed:
            results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == ["refused"] * 7 + ["stored"]
    assert sorted(p.name for p in (root / "race").iterdir()) == ["run.bag"]


def test_failed_upload_cleans_up(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        bucket.upload(tmp_path / "missing-source", "a/run.bag")
    assert not any(p.is_file() for p in root.rglob("*"))


def test_object_cannot_shadow_a_prefix(bucket: LocalBucket, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    bucket.upload(src, "a/b.bag")

    with pytest.raises(StorageError):
        bucket.upload(src, "a", overwrite=True)
    with pytest.raises(StorageError):
        bucket.upload(src, "a/b.bag/c.bag")


def test_download_reports_progress_per_chunk(bucket: LocalBucket, tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 5)
    src = tmp_path / "src"
    src.write_bytes(data)
    bucket.upload(src, "big.bag")
    progress: list[int] = []

    bucket.download("big.bag", tmp_path / "out", progress.append)

    assert progress == [CHUNK_SIZE, CHUNK_SIZE, 5]


def test_metadata_comes_from_the_file(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    bucket.upload(src, "a.bag")
    os.utime(root / "a.bag", ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))

    [listed] = bucket.list("").objects
    stat = bucket.stat("a.bag")

    assert listed.crc32c is None  # listing never hashes
    assert stat.crc32c is not None
    assert stat.generation == listed.generation == 1_700_000_000_123_456_789
    assert stat.updated is not None
    assert stat.updated.tzinfo is UTC
    assert stat.updated.timestamp() == pytest.approx(1_700_000_000.123456)


def test_delete_prunes_empty_directories(bucket: LocalBucket, root: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    bucket.upload(src, "a/b/c/run.bag")
    bucket.upload(src, "a/keep.bag")

    bucket.delete("a/b/c/run.bag")

    assert sorted(p.name for p in (root / "a").iterdir()) == ["keep.bag"]
    assert root.is_dir()


def test_prefix_listing_does_not_escape_via_partial_names(bucket: LocalBucket, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    for key in ("ab/1.bag", "abc.bag", "b/2.bag"):
        bucket.upload(src, key)

    assert [o.name for o in bucket.iter_objects("ab")] == ["ab/1.bag", "abc.bag"]
    assert bucket.list("ab", delimiter="/").prefixes == ["ab/"]


def test_open_bucket_decodes_file_urls(tmp_path: Path) -> None:
    opened = open_bucket(f"file://{tmp_path}/with%20space")

    assert isinstance(opened, LocalBucket)
    assert opened.root == tmp_path / "with space"
