"""One behavioural contract, run against the directory backend and the emulated GCS backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from src.storage import ObjectNotFound, PreconditionFailed
from tests.storage.helpers import Backend, crc32c_of, make_tree


def write(path: Path, data: bytes) -> Path:
    """Write data to path and return it."""
    path.write_bytes(data)
    return path


def test_upload_stat_download_round_trip(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    bucket = backend.bucket

    uploaded = bucket.upload(write(tmp_path / "src.bag", data), "c1/r1/run.bag")
    stat = bucket.stat("c1/r1/run.bag")
    progress: list[int] = []
    downloaded = bucket.download("c1/r1/run.bag", tmp_path / "dest.bag", progress.append)

    assert (tmp_path / "dest.bag").read_bytes() == data
    for info in (uploaded, stat, downloaded):
        assert info.name == "c1/r1/run.bag"
        assert info.size == len(data)
        assert info.crc32c == crc32c_of(data)
        assert info.generation == uploaded.generation
        assert info.updated is not None
        assert info.updated.utcoffset() is not None
    assert sum(progress) == len(data)


def test_list_with_delimiter_gives_child_prefixes_and_objects(backend: Backend) -> None:
    backend.seed(make_tree())
    bucket = backend.bucket

    root = bucket.list("", delimiter="/")
    cid = bucket.list("c1/", delimiter="/")
    partial = bucket.list("c1/r", delimiter="/")
    deep = bucket.list("c1/r1/f1/t1/lb1/20240101T000000/", delimiter="/")

    assert [o.name for o in root.objects] == ["index.json"]
    assert root.prefixes == ["c1/", "c2/"]
    assert [o.name for o in cid.objects] == ["c1/README.md"]
    assert cid.prefixes == ["c1/r1/", "c1/r2/"]
    assert partial.objects == []
    assert partial.prefixes == ["c1/r1/", "c1/r2/"]
    assert [o.name for o in deep.objects] == [
        "c1/r1/f1/t1/lb1/20240101T000000/labels.json",
        "c1/r1/f1/t1/lb1/20240101T000000/run.bag",
    ]
    assert deep.prefixes == []


def test_list_without_delimiter_is_recursive_and_sorted(backend: Backend) -> None:
    tree = make_tree()
    backend.seed(tree)

    listing = backend.bucket.list("c2/r1/")

    expected = sorted(name for name in tree if name.startswith("c2/r1/"))
    assert [o.name for o in listing.objects] == expected
    assert listing.prefixes == []
    assert all(o.size == len(tree[o.name]) for o in listing.objects)


def test_parallel_fanout_equals_sequential(backend: Backend) -> None:
    tree = make_tree()
    backend.seed(tree)
    bucket = backend.open("", page_size=7)  # on GCS every listing spans several pages

    sequential = list(bucket.iter_objects(parallel=False))
    parallel = list(bucket.iter_objects())

    assert len(tree) > 200
    assert len(parallel) == len(tree)  # no duplicates
    assert {o.name for o in parallel} == set(tree)
    assert sorted(parallel, key=lambda o: o.name) == sorted(sequential, key=lambda o: o.name)


def test_iter_objects_honours_prefix(backend: Backend) -> None:
    tree = make_tree()
    backend.seed(tree)

    names = {o.name for o in backend.bucket.iter_objects("c1/r2/f")}

    assert names == {name for name in tree if name.startswith("c1/r2/f")}


def test_upload_without_overwrite_refuses_existing_object(backend: Backend, tmp_path: Path) -> None:
    bucket = backend.bucket
    first = bucket.upload(write(tmp_path / "v1", b"version one"), "a/run.bag")

    with pytest.raises(PreconditionFailed, match="already exists"):
        bucket.upload(write(tmp_path / "v2", b"version two"), "a/run.bag")

    assert bucket.stat("a/run.bag").crc32c == first.crc32c
    if backend.gcs is not None:
        # The client asked for "must not exist" every time, and fake-gcs-server itself refused the second.
        uploads = backend.gcs.proxy.upload_requests()
        assert [r.param("ifGenerationMatch") for r in uploads] == ["0", "0"]
        assert [r.status for r in uploads] == [200, 412]


def test_overwrite_replaces_object(backend: Backend, tmp_path: Path) -> None:
    bucket = backend.bucket
    bucket.upload(write(tmp_path / "v1", b"version one"), "a/run.bag")

    replaced = bucket.upload(write(tmp_path / "v2", b"version two!"), "a/run.bag", overwrite=True)
    bucket.download("a/run.bag", tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == b"version two!"
    assert replaced.crc32c == crc32c_of(b"version two!") == bucket.stat("a/run.bag").crc32c
    if backend.gcs is not None:
        assert backend.gcs.proxy.upload_requests()[-1].param("ifGenerationMatch") is None


def test_delete_removes_object_and_empty_prefix(backend: Backend) -> None:
    backend.seed({"a/b/only.bag": b"x", "a/keep.bag": b"y"})
    bucket = backend.bucket

    bucket.delete("a/b/only.bag")

    with pytest.raises(ObjectNotFound):
        bucket.stat("a/b/only.bag")
    with pytest.raises(ObjectNotFound):
        bucket.delete("a/b/only.bag")
    listing = bucket.list("a/", delimiter="/")
    assert [o.name for o in listing.objects] == ["a/keep.bag"]
    assert listing.prefixes == []


def test_missing_objects_raise_object_not_found(backend: Backend, tmp_path: Path) -> None:
    bucket = backend.bucket

    with pytest.raises(ObjectNotFound, match=r"nope\.bag"):
        bucket.stat("nope.bag")
    with pytest.raises(ObjectNotFound):
        bucket.download("dir/nope.bag", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_bucket_lists_as_empty(backend: Backend) -> None:
    assert backend.bucket.list("", delimiter="/").objects == []
    assert backend.bucket.list("", delimiter="/").prefixes == []
    assert list(backend.bucket.iter_objects()) == []
    assert list(backend.open("not/there").iter_objects()) == []


@pytest.mark.parametrize(
    "key", ["", "/abs.bag", "../escape.bag", "a/../../b.bag", "..", "a/./b", "a//b", "a\\b", "a\x00b", "a/"]
)
def test_unsafe_keys_are_rejected(backend: Backend, tmp_path: Path, key: str) -> None:
    src = write(tmp_path / "src", b"x")

    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by rule
        backend.bucket.upload(src, key)
    with pytest.raises(ValueError):  # noqa: PT011
        backend.bucket.stat(key)


@pytest.mark.parametrize("prefix", ["../up", "a/../b/", "/abs/", "a\\b"])
def test_unsafe_prefixes_are_rejected(backend: Backend, prefix: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        backend.bucket.list(prefix)


def test_url_prefix_makes_names_relative(backend: Backend, tmp_path: Path) -> None:
    backend.seed(make_tree("some/prefix/") | {"other/x.bag": b"x", "some/prefixed.bag": b"y"})
    scoped = backend.open("some/prefix")

    names = {o.name for o in scoped.iter_objects()}
    root = scoped.list("", delimiter="/")
    uploaded = scoped.upload(write(tmp_path / "new", b"new"), "c1/new.bag")

    assert names == set(make_tree())
    assert [o.name for o in root.objects] == ["index.json"]
    assert root.prefixes == ["c1/", "c2/"]
    assert uploaded.name == "c1/new.bag"
    assert backend.bucket.stat("some/prefix/c1/new.bag").crc32c == crc32c_of(b"new")
    assert scoped.stat("c1/new.bag").size == 3
    scoped.delete("c1/new.bag")
    with pytest.raises(ObjectNotFound):
        backend.bucket.stat("some/prefix/c1/new.bag")


def test_ranged_reads_write_slices_at_their_offsets(backend: Backend, tmp_path: Path) -> None:
    data = os.urandom(1_000_003)
    backend.seed({"big/run.bag": data})
    bucket = backend.bucket
    info = bucket.stat("big/run.bag")
    dest = tmp_path / "assembled"
    dest.write_bytes(b"\0" * len(data))
    progress: list[int] = []

    for start in reversed(range(0, len(data), 300_000)):  # any order, each into its own place
        bucket.download_range(
            "big/run.bag", dest, start, min(start + 300_000, len(data)), progress.append, expected=info
        )

    assert dest.read_bytes() == data
    assert sum(progress) == len(data)
    with pytest.raises(ObjectNotFound):
        bucket.download_range("big/none.bag", dest, 0, 10)
