"""An operator analyses a whole lbid as one batch, finds its outlier run in Fleet, opens it, and compares runs."""

from __future__ import annotations

import pytest

from tests.browser.conftest import click, login
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser

# In the tiny demo this lbid has three runs, one of which records at twice the others' frame rate.
LBID = {"cid": "acme", "regionid": "north", "fieldid": "field-01", "twid": "tw01", "lbid": "lb1"}


def test_batch_for_one_lbid_then_outlier_then_run_view_then_compare(dash_duo, app):
    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    query = "&".join(f"{level}={value}" for level, value in LBID.items())
    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "operator", PASSWORDS["operator"], f"/fleet?{query}")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Fleet")
    dash_duo.wait_for_element("#fl-empty", timeout=15)  # nothing analysed yet, and the view says so

    click(dash_duo, "#fl-start-batch")
    dash_duo.wait_for_element("#fl-batch-progress", timeout=15)
    dash_duo.wait_for_text_to_equal("#fl-batch-status", "complete", timeout=180)
    dash_duo.wait_for_contains_text("#fl-kpi-analysed-value", "3 of 3", timeout=20)
    dash_duo.wait_for_element("#fl-complete", timeout=10)
    dash_duo.wait_for_element("#chart-fleet-latency-by-child .main-svg", timeout=10)

    outlier = dash_duo.wait_for_element("#fl-outlier-0", timeout=20)
    coordinate = outlier.text
    assert coordinate.startswith("acme/north/field-01/tw01/lb1/")
    click(dash_duo, "#fl-outlier-0")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Run analysis", timeout=15)
    dash_duo.wait_for_contains_text("#ra-timestamp", coordinate.rsplit("/", 1)[1], timeout=15)
    dash_duo.wait_for_element("#ra-step-analyzed.text-bg-success", timeout=15)

    others = app.server.extensions["bagboard.services"].fleet.get_runs(LBID)["coordinate"].tolist()
    other = next(path for path in others if path != coordinate)
    dash_duo.driver.get(f"{dash_duo.server.url}/compare?a={coordinate}&b={other}")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Compare runs", timeout=15)
    dash_duo.wait_for_element("#cmp-kpi-table", timeout=15)
    assert "B − A" in dash_duo.find_element("#cmp-kpi-table").text
    dash_duo.wait_for_element("#chart-compare-latency .main-svg", timeout=10)
    dash_duo.wait_for_element("#chart-compare-fps-profile .main-svg", timeout=10)
