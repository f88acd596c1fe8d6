"""Every view works under the Content-Security-Policy, with no violation reported by the browser."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import click, login
from tests.browser.test_frame_inspector_flow import CLICK_POINT, LEVELS, analysed_run, peak_latency
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser

# Runs before any page script (and is not itself subject to the page's CSP): record every violation event.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
  e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sourceFile || '') + ':' + e.lineNumber));
"""


class ViolationWatch:
    """Collect CSP violations from the console and from securitypolicyviolation events, page after page."""

    def __init__(self, driver) -> None:
        self.driver = driver
        self.found: list[str] = []
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})

    def collect(self) -> list[str]:
        """Add what the current page has reported so far and return everything seen."""
        self.found += self.driver.execute_script("return (window.__csp || []).splice(0)") or []
        self.found += [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
        ]
        return self.found

    def go(self, url: str) -> None:
        """Collect the current page's reports, then navigate."""
        self.collect()
        self.driver.get(url)


def test_every_view_runs_under_the_csp_without_violations(dash_duo, app):
    coord = analysed_run(app)
    services = app.server.extensions["bagboard.services"]
    t, ms = peak_latency(services, coord)
    query = "&".join(f"{level}={value}" for level, value in zip(LEVELS, coord.to_path_tuple(), strict=True))
    filters = "&".join(f"{level}={value}" for level, value in zip(LEVELS[:2], coord.to_path_tuple()[:2], strict=True))

    dash_duo.start_server(app, navigate=False)
    driver = dash_duo.driver
    watch = ViolationWatch(driver)

    # Login page, then the coverage view with its charts, table and CSV export.
    login(dash_duo, "operator", PASSWORDS["operator"], f"/coverage?{filters}")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Temporal coverage", timeout=20)
    dash_duo.wait_for_element("#cov-charts .main-svg", timeout=30)
    click(dash_duo, "#cov-export")
    assert watch.collect() == []

    # Run analysis: charts, then the frame inspector (a chart click opens a frame; the arrow key steps).
    watch.go(dash_duo.server.url + f"/run-analysis?{query}")
    dash_duo.wait_for_element("#chart-run-analysis-latency .main-svg", timeout=30)
    dash_duo.wait_for_contains_text("#ra-fi-index", "of", timeout=30)
    expected = services.frames.frame_view(coord, t_s=t)
    driver.execute_script(CLICK_POINT, t, ms)
    dash_duo.wait_for_contains_text("#ra-fi-index", f"{expected.frame_index:,} (", timeout=20)
    dash_duo.find_element("body").send_keys(Keys.ARROW_RIGHT)
    following = services.frames.frame_view(coord, position=expected.position + 1)
    dash_duo.wait_for_contains_text("#ra-fi-index", f"{following.frame_index:,} (", timeout=20)
    # The frame image was drawn (img-src allows the frame route).
    loaded = driver.execute_script(
        "return [...document.querySelectorAll('#ra-fi-graph image')].some(i => i.getBBox().width > 0)"
    )
    assert loaded
    assert watch.collect() == []

    # Download manager: the runs grid and the jobs list.
    watch.go(dash_duo.server.url + f"/downloads?{filters}")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Download manager", timeout=20)
    dash_duo.wait_for_element("#dm-grid .ag-row", timeout=30)
    assert watch.collect() == []

    # The watch is not blind: an injected inline script is refused and reported.
    driver.execute_script("const s = document.createElement('script'); s.textContent = '1'; document.body.append(s)")
    assert any("script-src" in v for v in watch.collect())
