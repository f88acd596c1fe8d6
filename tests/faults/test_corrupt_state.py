"""Fault: local state files are corrupt — the inventory snapshot and ml/.export_tracking.json.

What an operator notices: the app still starts, a warning names the unusable snapshot, and the
inventory is rebuilt (on start, or by an admin's refresh). A corrupt tracking file gives one clear
line naming the file in the download manager's upload tab and upload plan; no page answers 500.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from src.config import Settings
from src.jobs.base import JobError
from src.services.inventory import read_snapshot
from src.services.local_state import TRACKING_FILE
from tests.conftest import AuthActions, post_callback
from tests.faults.helpers import app_settings, seed_demo_app
from tests.helpers import wait_for

COV_SEARCH = '{"type":"filter-url","view":"coverage"}.search'
DM_SEARCH = '{"type":"filter-url","view":"download-manager"}.search'
RA_SEARCH = '{"type":"filter-url","view":"run-analysis"}.search'


class ListHandler(logging.Handler):
    """Keep the event dicts structlog hands to the standard library."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            self.events.append({**record.msg, "level": record.levelname})


@pytest.fixture
def inventory_log() -> Iterator[ListHandler]:
    """Capture what the inventory service logs (the app replaces the root handlers, not this one)."""
    handler = ListHandler()
    logger = logging.getLogger("src.services.inventory")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed the tiny demo (buckets, an export, an inventory snapshot) once into a template data root."""
    root = tmp_path_factory.mktemp("seeded") / "data"
    root.mkdir()
    app = seed_demo_app(app_settings(root))
    app.server.extensions["bagboard.services"].jobs.shutdown(wait=True)
    return root


@pytest.fixture
def seeded_settings(seeded_template: Path, tmp_path: Path) -> Settings:
    """Return settings on a private copy of the seeded data root (without the seeding's cache and jobs)."""
    root = tmp_path / "data"
    shutil.copytree(seeded_template, root, ignore=shutil.ignore_patterns("cache", "jobs.sqlite3*"))
    return app_settings(root)


def corrupt_snapshot(path: Path, how: str) -> None:
    """Damage the parquet snapshot the way disks, crashes and old versions do."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00\xff not parquet at all " * 100)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "foreign":  # a valid parquet file, but not ours (no schema version)
        pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    else:
        raise AssertionError(how)


def start(settings: Settings):
    """Create the app and return (app, client, auth, services)."""
    from app import create_app

    app = create_app(settings)
    client = app.server.test_client()
    return app, client, AuthActions(client), app.server.extensions["bagboard.services"]


# -- the inventory snapshot ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "foreign"])
def test_a_corrupt_snapshot_is_logged_and_rebuilt_on_start(
    seeded_settings: Settings, inventory_log: ListHandler, how: str
):
    path = seeded_settings.snapshot_path
    runs_before = read_snapshot(path).run_count
    corrupt_snapshot(path, how)

    app, client, auth, services = start(dataclasses.replace(seeded_settings, inventory_refresh_on_start=True))

    warnings = [e for e in inventory_log.events if e.get("event") == "inventory_snapshot_unusable"]
    assert warnings, inventory_log.events
    assert warnings[0]["level"] == "WARNING" and warnings[0]["path"] == str(path)
    assert warnings[0]["action"] == "rebuild" and "\n" not in warnings[0]["error"]
    # The background rebuild restores the inventory and rewrites a good snapshot.
    wait_for(lambda: services.inventory.get_cache_info()["available"], timeout=30)
    assert services.inventory.get_cache_info()["runs"] == runs_before
    assert read_snapshot(path).run_count == runs_before
    assert client.get("/healthz").status_code == 200
    auth.login("viewer")
    response = post_callback(client, app, "cov-banner.children", {COV_SEARCH: ""})
    assert response.status_code == 200
    assert response.get_json()["response"]["cov-kpi-timestamps-value"]["children"] == f"{runs_before:,}"


def test_without_a_rebuild_on_start_the_view_explains_and_an_admin_refresh_restores(
    seeded_settings: Settings, inventory_log: ListHandler
):
    path = seeded_settings.snapshot_path
    runs_before = read_snapshot(path).run_count
    corrupt_snapshot(path, "truncated")

    app, client, auth, _ = start(seeded_settings)  # BAGBOARD_INVENTORY_REFRESH_ON_START=false

    assert any(e.get("event") == "inventory_snapshot_unusable" for e in inventory_log.events)
    assert client.get("/healthz").status_code == 200
    auth.login("admin")
    empty = post_callback(client, app, "cov-status.children", {COV_SEARCH: ""})
    assert empty.status_code == 200 and "No inventory yet" in empty.get_data(as_text=True)
    started = post_callback(client, app, "cov-refresh-status.children", {"cov-refresh.n_clicks": 1})
    assert started.status_code == 200
    job_id = started.get_json()["response"]["cov-refresh-job"]["data"]

    def poll():
        values = {"cov-refresh-tick.n_intervals": 1, "cov-refresh-job.data": job_id}
        response = post_callback(client, app, "cov-refreshed.data", values)
        status = response.get_json()["response"]["cov-refresh-status"]["children"]
        return status if not status.startswith("Refreshing") else None

    assert wait_for(poll, timeout=30) == f"Refreshed: {runs_before:,} runs."
    assert read_snapshot(path).run_count == runs_before
    rendered = post_callback(client, app, "cov-status.children", {COV_SEARCH: ""})
    assert rendered.get_json()["response"]["cov-kpi-timestamps-value"]["children"] == f"{runs_before:,}"


# -- the export tracking file --------------------------------------------------------------------

TRACKING_CORRUPTIONS = {
    "truncated": '{"demo-export": {"created_at": "2024-05-14T10:00:00", "samples',
    "not an object": "[1, 2, 3]",
    "wrong field type": '{"demo-export": {"sample_count": "many"}}',
    "unsafe export id": '{"../../etc": {}}',
    "bad coordinate": '{"demo-export": {"coordinates": ["a/../b"]}}',
    "binary": b"\xff\xfe\x00garbage".decode("latin-1"),
}


@pytest.mark.parametrize("content", TRACKING_CORRUPTIONS.values(), ids=TRACKING_CORRUPTIONS.keys())
def test_a_corrupt_tracking_file_gives_one_line_naming_it_and_no_500(seeded_settings: Settings, content: str):
    tracking = seeded_settings.data_root / "ml" / TRACKING_FILE
    export_ids = sorted(p.name for p in (seeded_settings.data_root / "ml" / "exports").iterdir())
    assert export_ids, "the demo seeds a local export"
    export_id = export_ids[0]
    tracking.write_text(content, encoding="latin-1")
    before = tracking.read_bytes()
    app, client, auth, services = start(seeded_settings)

    with pytest.raises(JobError) as excinfo:
        services.operations.plan_ml_upload(export_id)
    message = str(excinfo.value)
    assert "\n" not in message and str(tracking) in message

    auth.login("operator")
    tab = post_callback(client, app, "dm-export.options", {"dm-tabs.active_tab": "dm-tab-upload"})
    assert tab.status_code == 200, tab.get_data(as_text=True)
    options = tab.get_json()["response"]["dm-export"]["options"]
    assert options == [{"label": message, "value": "", "disabled": True}], "the picker names the corrupt file"
    values = {"dm-plan-upload.n_clicks": 1, "dm-export.value": export_id, "dm-upload-conflict.value": "skip"}
    plan = post_callback(client, app, "dm-upload-plan.children", values)
    assert plan.status_code == 200, plan.get_data(as_text=True)
    shown = plan.get_json()["response"]["dm-upload-plan"]["children"]["props"]["children"]
    assert shown == message
    # Starting the upload anyway fails the job with the same line; nothing is uploaded or rewritten.
    values = {"dm-start-upload.n_clicks": 1, "dm-export.value": export_id, "dm-upload-conflict.value": "skip"}
    assert post_callback(client, app, "dm-upload-msg.children", values).status_code == 200
    registry = services.jobs.registry
    job = wait_for(lambda: next((j for j in registry.list() if not j.is_active), None), timeout=20)
    assert job.status.value == "failed" and job.error == message
    assert tracking.read_bytes() == before, "a corrupt tracking file is never overwritten"
    # The other views do not depend on the tracking file and keep working.
    for output, search in (("dm-grid.rowData", DM_SEARCH), ("cov-banner.children", COV_SEARCH)):
        response = post_callback(client, app, output, {search: "?cid=acme"})
        assert response.status_code == 200, (output, response.get_data(as_text=True))
