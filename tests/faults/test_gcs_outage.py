"""Fault: GCS answers 503/429 for a while (retried, then fine) or for longer than the retry budget.

fake-gcs-server sits behind the fault proxy, which answers the chosen requests with the injected
status instead of forwarding them. What a user or operator notices:

- a short burst of 503/429 is invisible: the inventory refresh and a raw download retry with
  backoff and succeed (the proxy saw the failed attempts, then the successful ones);
- a longer outage fails the refresh with one clear line, and the dashboard keeps serving the last
  good snapshot with a "stale since" banner (and /healthz says since when).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import pytest
from cachelib import SimpleCache

from src.config import Settings
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.storage import Bucket, StorageUnavailable, open_bucket
from tests.conftest import AuthActions, post_callback
from tests.faults.helpers import (
    FAST_RETRY,
    SHORT_RETRY,
    crc32c_of,
    file_crc32c,
    is_listing,
    is_media,
    random_bytes,
)
from tests.helpers import wait_for
from tests.support.gcs import GcsTestBucket

pytestmark = pytest.mark.emulator

RUN = "acme/north/f1/tw1/lb1/2024-05-14T10-32-00"
OTHER_RUNS = ("acme/north/f1/tw1/lb1/2024-05-15T08-00-00", "acme/south/f2/tw1/lb1/2024-05-16T09-00-00")
COV_SEARCH = '{"type":"filter-url","view":"coverage"}.search'


def raw_objects() -> dict[str, bytes]:
    """Return the raw bucket: one multi-file run (ROS1 bags and a ROS2 folder) and two small runs."""
    objects = {
        f"{RUN}/drive_001.bag": random_bytes(300_000, 1),
        f"{RUN}/drive_002.bag": random_bytes(200_000, 2),
        f"{RUN}/drive_003/metadata.yaml": b"rosbag2_bagfile_information: {}\n",
        f"{RUN}/drive_003/drive_003_0.mcap": random_bytes(150_000, 3),
    }
    for index, run in enumerate(OTHER_RUNS):
        objects[f"{run}/drive_001.bag"] = random_bytes(1000, 10 + index)
    return objects


def ml_objects() -> dict[str, bytes]:
    """Return a few samples with label sidecars."""
    objects = {}
    for run in (RUN, *OTHER_RUNS):
        for index in range(3):
            objects[f"{run}/frame_{index:04d}.png"] = b"png"
            objects[f"{run}/frame_{index:04d}.json"] = b"{}"
    return objects


def seed(stack: GcsTestBucket) -> None:
    """Put both trees into the emulated bucket, under raw/ and ml/ (bypassing the proxy)."""
    stack.seed({f"raw/{name}": data for name, data in raw_objects().items()})
    stack.seed({f"ml/{name}": data for name, data in ml_objects().items()})


def buckets(stack: GcsTestBucket, retry) -> tuple[Bucket, Bucket]:
    """Open gs://bucket/raw and gs://bucket/ml with the given retry policy."""
    return open_bucket(f"gs://{stack.bucket}/raw", retry=retry), open_bucket(f"gs://{stack.bucket}/ml", retry=retry)


def inventory_on(stack: GcsTestBucket, tmp_path: Path, retry, shared=None) -> CloudInventoryService:
    """Return an inventory over both emulated buckets with the given retry policy."""
    raw, ml = buckets(stack, retry)
    return CloudInventoryService(raw, ml, tmp_path / "state" / "snapshot.parquet", shared or SimpleCache())


def statuses(requests) -> list[int | None]:
    """Return the statuses the proxy answered, in order."""
    return [request.status for request in requests]


# -- a short burst: retried with backoff, nobody notices -----------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_listing_retries_through_a_burst_and_the_refresh_succeeds(gcs: GcsTestBucket, tmp_path: Path, status: int):
    seed(gcs)
    inventory = inventory_on(gcs, tmp_path, FAST_RETRY)
    gcs.proxy.fail_next(4, status, match=is_listing)

    built = inventory.refresh_inventory()

    listings = gcs.proxy.listing_requests()
    assert statuses(listings)[:4] == [status] * 4, "the first listings met the injected failures"
    assert statuses(listings)[4:] and set(statuses(listings)[4:]) == {200}, "then every listing succeeded"
    assert built.run_count == 3
    info = inventory.get_cache_info()
    assert info["available"] and info["runs"] == 3
    assert info["stale_since"] is None and info["last_error"] is None
    assert info["objects"] == {"raw": len(raw_objects()), "ml": len(ml_objects())}


@pytest.mark.parametrize("status", [503, 429])
def test_raw_download_retries_through_a_burst_and_verifies_every_file(gcs: GcsTestBucket, tmp_path: Path, status: int):
    seed(gcs)
    raw, ml = buckets(gcs, FAST_RETRY)
    inventory = CloudInventoryService(raw, ml, tmp_path / "state" / "snapshot.parquet", SimpleCache())
    inventory.refresh_inventory()
    data_root = tmp_path / "data"
    local = LocalStateService(data_root)
    ops = CloudOperationService(inventory, local, raw, ml, data_root)
    gcs.proxy.reset()  # forget the listing traffic
    gcs.proxy.fail_next(3, status, match=is_media)

    job = ops.execute_raw_download(RUN)

    expected = {name.removeprefix(RUN + "/"): data for name, data in raw_objects().items() if name.startswith(RUN)}
    assert job.total_files == job.files_downloaded == len(expected)
    for rel, data in expected.items():
        local_file = local.raw_path(RUN).joinpath(*rel.split("/"))
        assert file_crc32c(local_file) == crc32c_of(data), rel
    by_path: dict[str, list[int | None]] = defaultdict(list)
    for request in gcs.proxy.requests:
        if is_media(request):
            by_path[request.path].append(request.status)
    assert sum(s.count(status) for s in by_path.values()) == 3, "the proxy answered three downloads with the fault"
    assert len(by_path) == len(expected)
    for path, seen in by_path.items():
        assert seen[-1] == 200 and seen.count(200) == 1, (path, seen)  # retried until one success, no more
    assert local.check_raw_downloaded(RUN).bag_count == 3


# -- a long outage: the refresh fails, the last good snapshot stays in service ---------------------


def test_an_outage_beyond_the_retry_budget_keeps_the_last_good_snapshot(gcs: GcsTestBucket, tmp_path: Path):
    seed(gcs)
    shared = SimpleCache()
    inventory = inventory_on(gcs, tmp_path, SHORT_RETRY, shared)
    inventory.refresh_inventory()
    before = inventory.get_runs()
    seen_before = gcs.proxy.listing_count()
    gcs.proxy.fail_next(1_000_000, 503, match=is_listing)

    with pytest.raises(StorageUnavailable) as excinfo:
        inventory.refresh_inventory()

    message = str(excinfo.value)
    assert "\n" not in message
    assert "cannot list the raw bucket" in message and "unreachable or throttling" in message
    listings = gcs.proxy.listing_requests()[seen_before:]
    assert len(listings) > 2 and set(statuses(listings)) == {503}, "it retried, then gave up"
    info = inventory.get_cache_info()
    assert info["available"] and info["runs"] == 3, "the last good snapshot is still served"
    assert info["stale_since"] is not None
    assert "cannot list the raw bucket" in info["last_error"]
    assert inventory.get_runs().equals(before)
    # A query that finds a refresh due tries once, logs the failure and answers from the snapshot.
    served = inventory.get_full_inventory()
    assert served is not None and served.run_count == 3
    # Another worker on the same snapshot and shared cache sees the same staleness.
    other = inventory_on(gcs, tmp_path, SHORT_RETRY, shared)
    assert other.get_cache_info()["stale_since"] == info["stale_since"]

    gcs.proxy.reset()  # the outage ends
    inventory.refresh_inventory()
    assert inventory.get_cache_info()["stale_since"] is None
    assert other.get_cache_info()["stale_since"] is None


@pytest.fixture
def gcs_settings(gcs: GcsTestBucket, settings: Settings) -> Settings:
    """Return the test settings pointed at the test's buckets, with a one-second retry budget (the settings')."""
    return dataclasses.replace(
        settings,
        raw_bucket=f"gs://{gcs.bucket}/raw",
        ml_bucket=f"gs://{gcs.bucket}/ml",
        gcs_retry_deadline=1.0,
        gcs_retry_initial=0.01,
        gcs_retry_maximum=0.05,
    )


def test_the_coverage_view_shows_the_stale_banner_during_an_outage(gcs: GcsTestBucket, gcs_settings: Settings):
    from app import create_app

    seed(gcs)
    app = create_app(gcs_settings)
    client = app.server.test_client()
    auth = AuthActions(client)
    services = app.server.extensions["bagboard.services"]
    services.inventory.refresh_inventory()
    auth.login("admin")
    healthy = post_callback(client, app, "cov-banner.children", {COV_SEARCH: "?cid=acme"})
    assert healthy.status_code == 200
    assert "Inventory is stale" not in healthy.get_data(as_text=True)
    bags_before = healthy.get_json()["response"]["cov-kpi-bags-value"]["children"]
    assert bags_before == "5"

    gcs.proxy.fail_next(1_000_000, 503, match=is_listing)
    started = post_callback(client, app, "cov-refresh-status.children", {"cov-refresh.n_clicks": 1})
    assert started.status_code == 200
    job_id = started.get_json()["response"]["cov-refresh-job"]["data"]

    def poll():
        response = post_callback(
            client,
            app,
            "cov-refreshed.data",
            {"cov-refresh-tick.n_intervals": 1, "cov-refresh-job.data": job_id},
        )
        assert response.status_code == 200
        status = response.get_json()["response"]["cov-refresh-status"]["children"]
        return status if status.startswith("Refresh failed") else None

    status = wait_for(poll, timeout=30)
    assert "unreachable or throttling" in status and "\n" not in status

    response = post_callback(client, app, "cov-banner.children", {COV_SEARCH: "?cid=acme"})
    assert response.status_code == 200
    outputs = response.get_json()["response"]
    banner = str(outputs["cov-banner"]["children"])
    assert "Inventory is stale " in banner and "the last refresh failed, showing the last good snapshot" in banner
    assert "cannot list the raw bucket" in banner
    assert outputs["cov-kpi-bags-value"]["children"] == bags_before, "the last good numbers are still shown"
    health = client.get("/healthz").get_json()
    assert health["inventory_stale_since"] is not None
