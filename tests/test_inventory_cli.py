"""The demo and inventory commands, and the same inventory from a local bucket and from GCS."""

from __future__ import annotations

import json

import pytest
from cachelib import SimpleCache

from src.demo.seed import seed_buckets
from src.services.inventory import CloudInventoryService
from src.storage import open_bucket


def test_demo_seed_then_inventory_commands(app, settings):
    runner = app.server.test_cli_runner()
    seeded = runner.invoke(args=["demo", "seed", "--size", "tiny"])
    assert seeded.exit_code == 0, seeded.output
    assert "seeded 8 runs" in seeded.output and "inventory: 8 runs" in seeded.output

    info = json.loads(runner.invoke(args=["inventory", "info", "--json"]).output)
    assert info["available"] and info["runs"] == 8
    assert info["kinds"]["raw"]["inflight"] == 2  # the .active and .tmp objects are listed but never counted
    assert info["unrecognised_count"] == 0

    runs = json.loads(runner.invoke(args=["inventory", "runs", "--json", "--cid", "acme"]).output)
    assert runs and all(row["coordinate"].startswith("acme/") for row in runs)
    every = json.loads(runner.invoke(args=["inventory", "runs", "--json"]).output)
    assert sum(row["raw_bags"] for row in every) == 10

    bad = runner.invoke(args=["inventory", "runs", "--cid", "../etc"])
    assert bad.exit_code != 0 and "cid must not contain '..'" in bad.output


def test_refresh_of_a_prefix_lists_only_that_subtree(app, settings):
    runner = app.server.test_cli_runner()
    assert runner.invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    run = json.loads(runner.invoke(args=["inventory", "runs", "--json"]).output)[0]["coordinate"]
    bag = settings.raw_bucket.removeprefix("file://") + f"/{run}/late_arrival.bag"
    with open(bag, "wb") as out:
        out.write(b"x" * 10)
    cid = run.split("/")[0]
    result = runner.invoke(args=["inventory", "refresh", "--prefix", cid])
    assert result.exit_code == 0, result.output
    assert "listed raw bucket" in result.output and "inventory: 8 runs" in result.output
    rows = json.loads(runner.invoke(args=["inventory", "runs", "--json", "--cid", cid]).output)
    assert next(r for r in rows if r["coordinate"] == run)["raw_bags"] >= 2
    bad = runner.invoke(args=["inventory", "refresh", "--prefix", "a/../b"])
    assert bad.exit_code != 0 and "bad --prefix" in bad.output


def test_inventory_runs_without_an_inventory_says_how_to_build_one(app):
    result = app.server.test_cli_runner().invoke(args=["inventory", "runs"])
    assert result.exit_code != 0 and "inventory refresh" in result.output


def test_demo_seed_refuses_a_bad_bucket_url(app):
    result = app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny", "--raw-bucket", "s3://x"])
    assert result.exit_code != 0 and "gs://" in result.output


@pytest.mark.emulator
def test_refresh_gives_the_same_inventory_from_gcs_and_a_local_bucket(tmp_path, gcs):
    local = tmp_path / "local"
    seed_buckets(f"file://{local}/raw", f"file://{local}/ml", tmp_path / "data-local", size="tiny", seed=3)
    # The uploads and listings go through the fault proxy to fake-gcs-server.
    raw_url, ml_url = f"gs://{gcs.bucket}/raw", f"gs://{gcs.bucket}/ml"
    seed_buckets(raw_url, ml_url, tmp_path / "data-gcs", size="tiny", seed=3)
    inventories = {
        name: CloudInventoryService(open_bucket(raw), open_bucket(ml), tmp_path / f"{name}.parquet", SimpleCache())
        for name, raw, ml in (
            ("local", f"file://{local}/raw", f"file://{local}/ml"),
            ("gcs", raw_url, ml_url),
        )
    }
    for service in inventories.values():
        service.refresh_inventory()
    columns = ["cid", "regionid", "fieldid", "twid", "lbid", "timestamp", "raw_bags", "raw_bytes", "ml_samples"]
    local_runs = inventories["local"].get_runs({})[columns].reset_index(drop=True)
    gcs_runs = inventories["gcs"].get_runs({})[columns].reset_index(drop=True)
    assert len(local_runs) == 8
    assert local_runs.equals(gcs_runs)
    local_info, gcs_info = (s.get_cache_info() for s in inventories.values())
    assert local_info["objects"] == gcs_info["objects"]
    assert local_info["kinds"] == gcs_info["kinds"]
    coord = "/".join(local_runs.iloc[0][columns[:6]])
    assert inventories["local"].get_raw_bags_info(coord) == inventories["gcs"].get_raw_bags_info(coord)


def test_a_corrupt_snapshot_is_rebuilt_at_start_without_a_crash(app, settings, caplog):
    from src.services.container import ServiceContainer

    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    settings.snapshot_path.write_bytes(b"PAR1 this is not parquet")
    services = ServiceContainer.initialize(settings.with_overrides(inventory_refresh_on_start=True), SimpleCache())
    thread = services.warm_up()
    assert thread is not None
    thread.join(timeout=30)
    info = services.inventory.get_cache_info()
    assert info["available"] and info["runs"] == 8
    assert "inventory_snapshot_unusable" in caplog.text
