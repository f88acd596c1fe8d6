"""URL parsing in open_bucket."""

from __future__ import annotations

from pathlib import Path

import pytest

from src.storage import GcsBucket, LocalBucket, open_bucket


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("gs://bags", "bags", ""),
        ("gs://bags/", "bags", ""),
        ("gs://bags/some/prefix", "bags", "some/prefix/"),
        ("gs://bags/some/prefix/", "bags", "some/prefix/"),
        ("GS://my-bags.eu_1/x", "my-bags.eu_1", "x/"),
    ],
)
def test_gs_urls(url: str, bucket: str, prefix: str) -> None:
    opened = open_bucket(url)

    assert isinstance(opened, GcsBucket)
    assert opened.bucket_name == bucket
    assert opened.prefix == prefix
    assert opened.url == url


def test_file_urls(tmp_path: Path) -> None:
    opened = open_bucket(f"file://{tmp_path}")
    via_localhost = open_bucket(f"file://localhost{tmp_path}/x")

    assert isinstance(opened, LocalBucket)
    assert opened.root == tmp_path
    assert isinstance(via_localhost, LocalBucket)
    assert via_localhost.root == tmp_path / "x"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "/abs/path",
        "relative/path",
        "s3://bucket/x",
        "http://example.com/x",
        "gs://",
        "gs:///x",
        "gs://Upper-Case",
        "gs://a",
        "gs://bags/a/../b",
        "gs://bags/a\\b",
        "file://relative/path",
        "file:relative/path",
        "file:./relative",
        "file:///abs?query=1",
    ],
)
def test_bad_urls_are_rejected_with_a_clear_message(url: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)url|bucket|prefix|file"):
        open_bucket(url)
