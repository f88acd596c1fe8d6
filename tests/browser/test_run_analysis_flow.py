"""An operator takes a demo run from the cloud to charts: download → extract → analyse."""

from __future__ import annotations

import pytest

from tests.browser.conftest import click, login
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


def test_operator_moves_a_run_from_cloud_to_charts(dash_duo, app):
    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    runs = app.server.extensions["bagboard.services"].inventory.get_runs({})
    run = runs[runs["raw_bags"] > 0].iloc[0]
    query = "&".join(f"{level}={run[level]}" for level in ("cid", "regionid", "fieldid", "twid", "lbid", "timestamp"))
    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "operator", PASSWORDS["operator"], f"/run-analysis?{query}")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Run analysis")
    dash_duo.wait_for_contains_text("#ra-timestamp", run["timestamp"], timeout=10)

    for button, reached in (
        ("Download bags", "#ra-step-downloaded"),
        ("Extract", "#ra-step-extracted"),
        ("Analyse", "#ra-step-analyzed"),
    ):
        dash_duo.wait_for_text_to_equal("#ra-action", button, timeout=30)
        click(dash_duo, "#ra-action")
        dash_duo.wait_for_element(f"{reached}.text-bg-success", timeout=60)

    dash_duo.wait_for_element("#ra-action-done", timeout=30)
    dash_duo.wait_for_contains_text("#ra-kpi-fps-value", "Hz", timeout=10)
    dash_duo.wait_for_element("#chart-run-analysis-fps .main-svg", timeout=10)
    assert "Topics" in dash_duo.find_element("#ra-topic-table").text
