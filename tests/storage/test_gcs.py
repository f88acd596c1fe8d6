"""GCS-only behaviour on fake-gcs-server, with the fault proxy in front recording and distorting traffic."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from google.cloud.storage.retry import DEFAULT_RETRY

from src.storage import (
    GcsBucket,
    ObjectNotFound,
    PreconditionFailed,
    StorageError,
    StoragePermissionDenied,
    StorageUnavailable,
    open_bucket,
)
from src.storage.gcs import default_client
from tests.storage.helpers import FAST_RETRY, make_tree
from tests.support.fault_proxy import FaultProxy, RecordedRequest
from tests.support.gcs import GcsTestBucket

pytestmark = pytest.mark.emulator


def is_listing(request: RecordedRequest) -> bool:
    """Match objects.list requests (the library also sends background bucket GETs)."""
    return request.is_listing


@pytest.fixture
def bucket(gcs: GcsTestBucket) -> GcsBucket:
    """Return the test's bucket with a fast retry policy."""
    return small_pages(gcs, 1000)


def small_pages(gcs: GcsTestBucket, page_size: int, prefix: str = "") -> GcsBucket:
    """Open the test's bucket asking for page_size entries per listing page."""
    opened = open_bucket(f"gs://{gcs.bucket}/{prefix}".rstrip("/"), retry=FAST_RETRY, page_size=page_size)
    assert isinstance(opened, GcsBucket)
    return opened


def test_listings_ask_for_a_field_mask_and_full_pages(bucket: GcsBucket, proxy: FaultProxy) -> None:
    bucket.list("", delimiter="/")
    bucket.list("c1/")
    list(bucket.iter_objects(parallel=False))
    list(bucket.iter_objects())

    listings = proxy.listing_requests()
    assert len(listings) >= 4
    for request in listings:
        fields = request.param("fields") or ""
        assert "nextPageToken" in fields
        assert "prefixes" in fields
        assert fields.startswith("items(")
        assert request.param("maxResults") == "1000"


def test_pagination_returns_every_object(gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    gcs.seed({f"runs/{i:03d}.bag": b"x" for i in range(50)})
    bucket = small_pages(gcs, 7)

    listed = bucket.list("runs/")
    iterated = list(bucket.iter_objects("runs/", parallel=False))

    assert [o.name for o in listed.objects] == [f"runs/{i:03d}.bag" for i in range(50)]
    assert len(iterated) == 50
    tokens = [r.param("pageToken") for r in proxy.listing_requests() if r.param("pageToken")]
    assert len(tokens) >= 2 * 7  # ceil(50 / 7) - 1 = 7 follow-up pages per listing
    assert all(r.status == 200 for r in proxy.listing_requests())


def test_paginated_delimited_listing_has_every_prefix_once(gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    gcs.seed({f"d{i:02d}/x.bag": b"x" for i in range(12)} | {f"f{i:02d}.bag": b"y" for i in range(9)})

    listing = small_pages(gcs, 7).list("", delimiter="/")

    # GCS counts prefixes toward a page and fake-gcs-server does not; either way each comes once.
    assert listing.prefixes == [f"d{i:02d}/" for i in range(12)]
    assert [o.name for o in listing.objects] == [f"f{i:02d}.bag" for i in range(9)]
    assert len(proxy.listing_requests()) >= 2


def uneven_tree() -> dict[str, bytes]:
    """make_tree plus objects at every level and branches shallower or deeper than the usual six."""
    return make_tree() | {
        "top.bag": b"root level",
        "c3/only-region/region.json": b"{}",  # a cid with a single region, and a single field
        "c3/only-region/f1/t1/lb1/20240101T000000/run.bag": b"x",
        "c3/only-region/f1/t1/lb1/20240101T000000/labels.json": b"[]",
        "c4/flat.bag": b"a cid with no sub-folders",
        "c5/": b"",  # a folder placeholder, not an object
        "c5/a/b/c/d/e/f/g/deep.bag": b"deeper than max_depth",
        "c1/r1/f1/t1/lb1/20240101T000000/extra/nested.bag": b"below a timestamp",
        "c1/r1/f1/t1/lb1.bag": b"beside an lbid folder",
    }


@pytest.mark.parametrize(
    ("max_depth", "min_leaves", "max_workers"),
    [
        (5, 16, 32),  # the defaults: 1 root, 5 cids, 6 regions, 14 fields, stops at 26 twids
        (1, 16, 4),  # leaves: the 5 cids
        (2, 16, 16),  # leaves: the 6 regions (c3 has just one, c4 none)
        (5, 1, 8),  # the root alone is enough: one flat listing, in a worker
        (5, 5, 4),  # stops at the 5 cids
        (5, 12, 4),  # stops at the 14 fields
        (9, 10_000, 3),  # walks every level there is, past the deepest object
        (0, 16, 16),  # no fan-out: the sequential listing
    ],
)
def test_adaptive_fanout_equals_sequential(
    gcs: GcsTestBucket,
    max_depth: int,
    min_leaves: int,
    max_workers: int,
) -> None:
    tree = uneven_tree()
    gcs.seed(tree)
    bucket = small_pages(gcs, 7)  # several pages per listing, delimited ones included

    sequential = list(bucket.iter_objects(parallel=False))
    parallel = list(bucket.iter_objects(max_depth=max_depth, min_leaves=min_leaves, max_workers=max_workers))

    objects = {name for name in tree if not name.endswith("/")}
    assert len(parallel) == len(objects)  # no duplicates
    assert {o.name for o in parallel} == objects
    assert sorted(parallel, key=lambda o: o.name) == sorted(sequential, key=lambda o: o.name)
    assert all(o.crc32c is not None for o in parallel)


def test_sequential_is_one_flat_listing(bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    gcs.seed(uneven_tree())

    list(bucket.iter_objects(parallel=False))

    assert [(r.param("prefix"), r.param("delimiter")) for r in proxy.listing_requests()] == [(None, None)]


@pytest.mark.parametrize(
    ("min_leaves", "delimited", "flat"),
    [
        (2, {None}, {"c1/", "c2/"}),  # the root's 2 cids are enough
        (4, {None, "c1/", "c2/"}, {"c1/r1/", "c1/r2/", "c2/r1/", "c2/r2/"}),
        (16, {None, "c1/", "c2/"}, {"c1/r1/", "c1/r2/", "c2/r1/", "c2/r2/"}),  # max_depth=2 stops it
    ],
)
def test_fanout_stops_descending_once_a_level_is_wide_enough(
    bucket: GcsBucket,
    gcs: GcsTestBucket,
    proxy: FaultProxy,
    min_leaves: int,
    delimited: set[str | None],
    flat: set[str],
) -> None:
    gcs.seed(make_tree())

    list(bucket.iter_objects(max_depth=2, min_leaves=min_leaves))

    listings = proxy.listing_requests()
    assert {r.param("prefix") for r in listings if r.param("delimiter") == "/"} == delimited
    assert {r.param("prefix") for r in listings if r.param("delimiter") is None} == flat


def test_fanout_lists_each_level_concurrently(bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    gcs.seed({f"c{i}/r{j}/run.bag": b"x" for i in range(8) for j in range(2)} | {"c0/cid.json": b"{}"})
    proxy.set_latency(0.1)

    found = list(bucket.iter_objects(max_depth=2, max_workers=16))

    assert len(found) == 17
    listings = proxy.listing_requests()
    cids = [r for r in listings if r.param("delimiter") == "/" and r.param("prefix") is not None]
    leaves = [r for r in listings if r.param("delimiter") is None]
    assert len(cids) == 8 and len(leaves) == 16
    for level in (cids, leaves):
        # All of a level was in flight at once: each started before any of them was answered.
        assert max(r.started for r in level) < min(r.finished or 0 for r in level)
    # Levels follow one another: a level starts only once the one above has been answered.
    assert min(r.started for r in cids) >= listings[0].finished
    assert min(r.started for r in leaves) >= max(r.finished or 0 for r in cids)


def test_abandoned_fanout_stops_cleanly(gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    gcs.seed(make_tree())
    proxy.set_latency(0.01)
    iterator = small_pages(gcs, 3).iter_objects(max_workers=4)  # long leaf listings, still in flight at close

    first = [next(iterator) for _ in range(3)]
    iterator.close()  # type: ignore[attr-defined]
    sent = len(proxy.requests)
    time.sleep(0.1)

    assert len(first) == 3
    assert len(proxy.requests) == sent  # nothing keeps listing after close()
    assert not [t for t in threading.enumerate() if t.name.startswith("gcs-list")]


@pytest.mark.parametrize("status", [503, 429])
def test_transient_errors_are_retried(bucket: GcsBucket, proxy: FaultProxy, status: int) -> None:
    proxy.fail_next(2, status, match=is_listing)

    listing = bucket.list("", delimiter="/")

    assert listing.objects == []
    assert [r.status for r in proxy.listing_requests()] == [status, status, 200]


def test_transient_errors_during_fanout_are_retried(bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    tree = make_tree()
    gcs.seed(tree)
    proxy.fail_next(5, 503, match=is_listing)

    assert {o.name for o in bucket.iter_objects()} == set(tree)


def test_persistent_outage_raises_storage_unavailable(gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    impatient = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.02).with_timeout(0.3)
    bucket = open_bucket(f"gs://{gcs.bucket}/scoped", retry=impatient)
    proxy.fail_next(10_000, 503, match=is_listing)

    with pytest.raises(StorageUnavailable) as raised:
        bucket.list("")

    message = str(raised.value)
    assert "\n" not in message
    assert gcs.bucket in message


def test_forbidden_maps_to_permission_denied(
    bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    gcs.seed({"a.bag": b"x"})
    proxy.fail_next(1, 403, match=is_listing)
    proxy.fail_next(1, 403, match=lambda r: r.path.endswith("/o/a.bag"))

    with pytest.raises(StoragePermissionDenied) as listing_error:
        bucket.list("")
    with pytest.raises(StoragePermissionDenied):
        bucket.stat("a.bag")

    message = str(listing_error.value)
    assert f"gs://{gcs.bucket}" in message
    assert "credentials" in message
    assert len(proxy.listing_requests()) == 1  # 403 is not retried


def test_download_validates_crc32c(bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy, tmp_path: Path) -> None:
    gcs.seed({"bad.bag": b"payload"})
    proxy.corrupt_next(10, match=lambda r: r.is_media)  # damaged in transit, every retry too

    with pytest.raises(StorageError, match="crc32c"):
        bucket.download("bad.bag", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_download_sends_the_generation_it_reports(
    bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    gcs.seed({"a/run.bag": b"payload"})

    info = bucket.download("a/run.bag", tmp_path / "out")

    media = [r for r in proxy.requests if r.param("alt") == "media"]
    assert [r.param("generation") for r in media] == [str(info.generation)]


def test_missing_bucket_is_reported_as_such(gcs: GcsTestBucket) -> None:
    missing = open_bucket("gs://no-such-bucket", retry=FAST_RETRY)

    with pytest.raises(ObjectNotFound, match="bucket gs://no-such-bucket does not exist"):
        missing.list("")


def test_folder_placeholders_are_not_objects(bucket: GcsBucket, gcs: GcsTestBucket) -> None:
    gcs.seed({"c1/": b"", "c1/run.bag": b"x"})

    assert [o.name for o in bucket.iter_objects(parallel=False)] == ["c1/run.bag"]
    assert [o.name for o in bucket.iter_objects()] == ["c1/run.bag"]
    assert [o.name for o in bucket.list("c1/", delimiter="/").objects] == ["c1/run.bag"]


def test_shared_client_has_a_wide_connection_pool(gcs: GcsTestBucket) -> None:
    client = default_client()

    assert default_client() is client
    for scheme in ("http://", "https://"):
        assert client._http.get_adapter(scheme)._pool_maxsize == 64


def test_the_emulator_paginates_at_the_requested_page_size(gcs: GcsTestBucket, proxy: FaultProxy) -> None:
    gcs.seed({f"p/{i:04d}.bag": b"x" for i in range(2300)})

    names = [o.name for o in small_pages(gcs, 1000).iter_objects(parallel=False)]

    assert names == [f"p/{i:04d}.bag" for i in range(2300)]
    listings = proxy.listing_requests()
    assert [r.param("maxResults") for r in listings] == ["1000"] * 3
    assert [bool(r.param("pageToken")) for r in listings] == [False, True, True]


def test_large_uploads_are_resumable_and_never_clobber(bucket: GcsBucket, proxy: FaultProxy, tmp_path: Path) -> None:
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.write_bytes(os.urandom(9 << 20))  # above the library's 8 MiB multipart limit
    second.write_bytes(os.urandom(9 << 20))
    stored = bucket.upload(first, "exports/big.bag")

    with pytest.raises(PreconditionFailed, match=r"exports/big\.bag already exists"):
        bucket.upload(second, "exports/big.bag")
    assert bucket.stat("exports/big.bag").crc32c == stored.crc32c
    replaced = bucket.upload(second, "exports/big.bag", overwrite=True)

    sessions = [r for r in proxy.upload_requests() if r.method == "POST"]
    assert [r.param("uploadType") for r in sessions] == ["resumable"] * 3
    assert [r.param("ifGenerationMatch") for r in sessions] == ["0", "0", None]
    chunks = [r for r in proxy.upload_requests() if r.method == "PUT"]
    assert {r.headers.get("content-range") for r in chunks} >= {"bytes 0-9437183/9437184"}
    assert replaced.generation != stored.generation
    assert bucket.stat("exports/big.bag").crc32c == replaced.crc32c


def test_a_page_with_missing_or_malformed_fields_still_lists() -> None:
    bucket = GcsBucket("bags", "raw")
    items = [
        {"name": "raw/a.bag", "size": "3", "updated": "2024-05-14T10:32:00.123Z", "crc32c": "x", "generation": "7"},
        {"name": "raw/b.bag", "size": "4", "updated": "not a time", "generation": "8"},
        {"name": "raw/c.bag"},
        {"name": "raw/folder/", "size": "0"},
    ]

    infos = bucket._page_infos(items)

    assert [(i.name, i.size, i.generation) for i in infos] == [("a.bag", 3, 7), ("b.bag", 4, 8), ("c.bag", 0, None)]
    assert infos[0].updated is not None and infos[0].updated.utcoffset() is not None
    assert infos[1].updated is None and infos[1].crc32c is None


def test_a_connection_dropped_mid_download_resumes_and_is_verified(
    bucket: GcsBucket, gcs: GcsTestBucket, proxy: FaultProxy, tmp_path: Path
) -> None:
    data = os.urandom(3 << 20)
    gcs.seed({"a/run.bag": data})
    proxy.drop_next(1, after_bytes=1 << 20, match=lambda r: r.is_media)

    bucket.download("a/run.bag", tmp_path / "out")

    assert (tmp_path / "out").read_bytes() == data
    media = proxy.media_requests()
    assert len(media) == 2 and media[0].headers.get("range") is None
    assert media[1].headers["range"].startswith("bytes=") and media[1].headers["range"] != "bytes=0-"
