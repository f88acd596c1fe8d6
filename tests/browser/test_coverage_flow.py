"""A team member finds the under-labelled runs of one lbid and opens one in Run analysis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import login
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser
PATH = {"cid": "acme", "regionid": "north", "fieldid": "field-01", "twid": "tw01", "lbid": "lb1"}
BAG_SUFFIXES = (".bag", ".mcap", ".db3")


def hand_count(settings) -> dict[str, tuple[int, int]]:
    """Count bags and samples per run of PATH straight from the bucket directories."""
    lbid = "/".join(PATH.values())
    raw_root = Path(settings.raw_bucket.removeprefix("file://")) / lbid
    ml_root = Path(settings.ml_bucket.removeprefix("file://")) / lbid
    runs = {}
    for run in sorted(p.name for p in raw_root.iterdir()):
        bags = sum(1 for f in (raw_root / run).rglob("*") if f.suffix in BAG_SUFFIXES)
        samples = sum(1 for f in (ml_root / run).rglob("*.png")) if (ml_root / run).exists() else 0
        runs[run] = (bags, samples)
    return runs


def choose(dash_duo, selector: str, value: str, timeout: float = 10) -> None:
    """Pick value in a dropdown, retrying while its options are still loading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dash_duo.select_dcc_dropdown(selector, value=value)
        if value in dash_duo.find_element(selector).text:
            return
        dash_duo.driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
        time.sleep(0.3)
    dash_duo.driver.save_screenshot("/tmp/choose-failed.png")
    raise AssertionError(f"could not choose {value!r} in {selector}: {dash_duo.find_element(selector).text!r}")


def average_gap(runs: dict[str, tuple[int, int]], expected: int) -> float:
    gaps = [max(0.0, 1 - samples / (bags * expected)) * 100 for bags, samples in runs.values() if bags]
    return sum(gaps) / len(gaps)


def test_pick_a_full_path_change_target_and_open_an_under_labelled_run(dash_duo, app, settings):
    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    runs = hand_count(settings)
    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "viewer", PASSWORDS["viewer"], "/coverage")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Temporal coverage")

    for level, value in PATH.items():
        choose(dash_duo, f".bb-filter-{level}", value)

    total_bags = sum(b for b, _ in runs.values())
    total_samples = sum(s for _, s in runs.values())
    dash_duo.wait_for_text_to_equal("#cov-kpi-bags-value", str(total_bags), timeout=10)
    dash_duo.wait_for_text_to_equal("#cov-kpi-samples-value", str(total_samples))
    dash_duo.wait_for_text_to_equal("#cov-kpi-timestamps-value", str(len(runs)))
    dash_duo.wait_for_text_to_equal("#cov-kpi-gap-value", f"{average_gap(runs, 17):.1f} %")
    assert "lbid=lb1" in dash_duo.driver.current_url  # the selection is in the URL, ready to share

    expected = dash_duo.find_element("#cov-expected")
    expected.clear()
    expected.send_keys("10\n")
    dash_duo.wait_for_text_to_equal("#cov-kpi-gap-value", f"{average_gap(runs, 10):.1f} %", timeout=10)
    assert "expected=10" in dash_duo.driver.current_url

    worst = max((r for r, (b, s) in runs.items() if b), key=lambda r: 1 - runs[r][1] / (runs[r][0] * 10))
    dash_duo.wait_for_contains_text("#cov-under-grid", worst, timeout=10)
    cell = next(c for c in dash_duo.find_elements("#cov-under-grid .ag-cell") if c.text == worst)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    time.sleep(0.3)
    cell.click()
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Run analysis", timeout=10)
    url = dash_duo.driver.current_url
    assert "/run-analysis?" in url and f"timestamp={worst}" in url and "lbid=lb1" in url
    dash_duo.wait_for_contains_text("#ra-timestamp", worst, timeout=10)
