"""The benchmarks' listing stand-in must list exactly as fake-gcs-server does, page by page."""

from __future__ import annotations

import pytest

from src.storage import open_bucket
from tests.storage.helpers import FAST_RETRY, make_tree
from tests.support.fake_gcs import free_port
from tests.support.fault_proxy import FaultProxy
from tests.support.gcs import GcsTestBucket
from tests.support.listing_server import Listing, ListingServer

pytestmark = pytest.mark.emulator

TREE = make_tree() | {"c1/r1/f1~odd": b"x", "c1/r1/f1.bag": b"y", "top.bag": b"z"}


@pytest.mark.parametrize(
    ("prefix", "delimiter"),
    [("", None), ("", "/"), ("c1/", "/"), ("c1/r", "/"), ("c2/r1/f3/", None), ("c2/r1/f3/t", "/"), ("zz", "/")],
)
@pytest.mark.parametrize("page_size", [7, 1000])
def test_stand_in_lists_like_fake_gcs_server(
    gcs: GcsTestBucket, monkeypatch: pytest.MonkeyPatch, prefix: str, delimiter: str | None, page_size: int
) -> None:
    gcs.seed(TREE)
    emulated = open_bucket(f"gs://{gcs.bucket}", retry=FAST_RETRY, page_size=page_size).list(prefix, delimiter)

    with ListingServer([(name, len(data)) for name, data in TREE.items()]) as server:
        proxy = FaultProxy(server.url, port=free_port()).start()
        try:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
            stood_in = open_bucket("gs://any-bucket", retry=FAST_RETRY, page_size=page_size).list(prefix, delimiter)
        finally:
            proxy.stop()

    assert [o.name for o in stood_in.objects] == [o.name for o in emulated.objects]
    assert [o.size for o in stood_in.objects] == [o.size for o in emulated.objects]
    assert stood_in.prefixes == emulated.prefixes


def test_stand_in_pages_count_prefixes_and_honour_the_mask() -> None:
    listing = Listing([(f"d{i}/x", 1) for i in range(5)] + [(f"f{i}", 2) for i in range(5)])
    query = {"delimiter": ["/"], "maxResults": ["4"], "fields": ["items(name,size),prefixes,nextPageToken"]}

    first = listing.page(query)
    second = listing.page({**query, "pageToken": [first["nextPageToken"]]})
    third = listing.page({**query, "pageToken": [second["nextPageToken"]]})

    assert first == {"prefixes": ["d0/", "d1/", "d2/", "d3/"], "nextPageToken": first["nextPageToken"]}
    assert second["prefixes"] == ["d4/"] and [i["name"] for i in second["items"]] == ["f0", "f1", "f2"]
    assert third == {"items": [{"name": "f3", "size": "2"}, {"name": "f4", "size": "2"}]}
