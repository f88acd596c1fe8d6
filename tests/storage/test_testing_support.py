"""The test/bench support code must behave like the emulator and GCS where it stands in for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.storage import open_bucket
from src.storage.testing import EmulatorStack, StackProcess, _NameIndex, parse_fields, project_fields
from tests.storage.helpers import FAST_RETRY, make_tree

pytestmark = pytest.mark.emulator


@pytest.mark.parametrize(
    ("prefix", "delimiter"),
    [
        ("", None),
        ("", "/"),
        ("c1/", "/"),
        ("c1/r", "/"),
        ("c2/r1/f3/", None),
        ("c2/r1/f3/t", "/"),
        ("zz", "/"),
    ],
)
def test_name_index_lists_like_the_emulator(gcs_stack: EmulatorStack, prefix: str, delimiter: str | None) -> None:
    gcs_stack.seed(make_tree() | {"c1/r1/f1~odd": b"x", "c1/r1/f1.bag": b"y"})
    storage = gcs_stack._server._storage

    items, prefixes = storage.get_file_list(gcs_stack.bucket, prefix or None, delimiter)
    indexed = _NameIndex().list(storage.objects[gcs_stack.bucket], prefix, delimiter)

    assert [i["name"] for i in indexed["items"]] == [i["name"] for i in items]
    assert indexed["prefixes"] == prefixes


def test_field_masks_keep_only_requested_fields() -> None:
    mask = parse_fields("items(name,size),prefixes,nextPageToken")
    answer = {
        "kind": "storage#objects",
        "items": [{"name": "a", "size": "1", "md5Hash": "x"}],
        "prefixes": ["p/"],
    }

    assert project_fields(answer, mask) == {"items": [{"name": "a", "size": "1"}], "prefixes": ["p/"]}
    assert parse_fields("a(b(c,d),e),f") == {"a": {"b": {"c": {}, "d": {}}, "e": {}}, "f": {}}


def test_stack_process_serves_a_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    with StackProcess(indexed=True) as remote:
        remote.call("seed", {"a/1.bag": b"x", "a/2.bag": b"y", "b.bag": b"z"})
        remote.call("proxy.set_page_size", 2)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", remote.url)
        bucket = open_bucket(f"gs://{remote.bucket}")

        names = sorted(o.name for o in bucket.iter_objects(parallel=False))

        assert names == ["a/1.bag", "a/2.bag", "b.bag"]
        assert remote.call("listing_count") == 2


def test_indexed_listings_see_every_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EmulatorStack(indexed=True) as stack:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", stack.url)
        stack.seed({"a/1.bag": b"x"})
        stack.proxy.set_page_size(1000)  # paginated listings are the ones answered from the index
        bucket = open_bucket(f"gs://{stack.bucket}", retry=FAST_RETRY)
        upload = tmp_path / "2.bag"
        upload.write_bytes(b"y")

        def names() -> list[str]:
            return sorted(o.name for o in bucket.iter_objects(parallel=False))

        assert names() == ["a/1.bag"]
        bucket.upload(upload, "a/2.bag")  # through the proxy
        assert names() == ["a/1.bag", "a/2.bag"]
        bucket.delete("a/1.bag")
        assert names() == ["a/2.bag"]
        stack.reset()
        stack.proxy.set_page_size(1000)
        stack.seed({"b/3.bag": b"z"})  # straight into the emulator
        assert names() == ["b/3.bag"]
