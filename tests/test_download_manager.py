"""The download manager's run table, called as the browser calls it: KPIs over every run, the first rows shown."""

from __future__ import annotations

import pytest

from pages.download_manager import callbacks
from src.models import EXPECTED_EXTRACTION_FILES
from tests.conftest import post_callback

DM_SEARCH = '{"type":"filter-url","view":"download-manager"}.search'
KPI_IDS = ("dm-kpi-runs", "dm-kpi-cloud", "dm-kpi-downloaded", "dm-kpi-extracted", "dm-kpi-analyzed")


@pytest.fixture
def seeded(app):
    result = app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    return app


def run_table(client, app, search: str) -> dict:
    response = post_callback(client, app, "dm-grid.rowData", {DM_SEARCH: search})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def per_run_rows(app, filters: dict[str, str]) -> list[dict]:
    """Return the rows the per-run path builds (one full derive per run): what the table must agree with."""
    data_state = app.server.extensions["bagboard.services"].data_state
    return data_state.get_state_overview_data(data_state.generate_coordinates_from_filters(filters), filters)


def kpis(outputs: dict) -> list[str]:
    return [outputs[f"{card}-value"]["children"] for card in KPI_IDS]


def test_the_table_shows_every_run_and_its_counts(client, auth, seeded, data_root):
    auth.login("viewer")
    first, second = (row["coordinate"] for row in per_run_rows(seeded, {"cid": "acme"})[:2])
    (data_root / "raw" / first).mkdir(parents=True)
    (data_root / "raw" / first / "b0.bag").write_bytes(b"x")
    for run, names in (
        (first, [*EXPECTED_EXTRACTION_FILES, "analysis/summary.json"]),
        (second, EXPECTED_EXTRACTION_FILES),
    ):
        for name in names:
            (data_root / "processed" / run / name).parent.mkdir(parents=True, exist_ok=True)
            (data_root / "processed" / run / name).write_text("{}")
    outputs = run_table(client, seeded, "?cid=acme")
    rows = per_run_rows(seeded, {"cid": "acme"})
    assert outputs["dm-grid"]["rowData"] == callbacks.overview_rows(rows)
    assert kpis(outputs) == [
        f"{len(rows):,}",
        f"{sum(r['cloud_bags'] > 0 for r in rows):,}",
        f"{sum(r['downloaded'] for r in rows):,}",
        f"{sum(r['extracted'] for r in rows):,}",
        f"{sum(r['analyzed'] for r in rows):,}",
    ]
    assert kpis(outputs)[2:] == ["1", "2", "1"]  # the first run analysed, the second only extracted
    assert outputs["dm-status"]["children"] is None


def test_a_long_table_is_cut_but_its_counts_are_not(client, auth, seeded, monkeypatch):
    auth.login("viewer")
    rows = per_run_rows(seeded, {"cid": "acme"})
    monkeypatch.setattr(callbacks, "MAX_GRID_ROWS", 2)
    outputs = run_table(client, seeded, "?cid=acme")
    assert outputs["dm-grid"]["rowData"] == callbacks.overview_rows(rows[:2])
    assert kpis(outputs)[0] == f"{len(rows):,}"
    alert = outputs["dm-status"]["children"]["props"]
    assert alert["id"] == "dm-truncated"
    assert "".join(alert["children"]) == (
        f"Showing the first 2 of {len(rows):,} runs: narrow the filter to see the rest."
    )


def test_a_filter_without_runs_says_so(client, auth, seeded):
    auth.login("viewer")
    outputs = run_table(client, seeded, "?cid=nobody")
    assert outputs["dm-grid"]["rowData"] == []
    assert kpis(outputs) == ["0"] * len(KPI_IDS)
    assert "No runs match this filter." in str(outputs["dm-status"]["children"])
