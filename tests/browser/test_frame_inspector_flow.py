"""A viewer opens an analysed demo run, clicks the highest latency, sees that frame with its boxes and steps on."""

from __future__ import annotations

import numpy as np
import pytest
from selenium.webdriver.common.keys import Keys

from src.models import RunCoordinate
from tests.browser.conftest import login
from tests.conftest import PASSWORDS
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

LEVELS = ("cid", "regionid", "fieldid", "twid", "lbid", "timestamp")

# Hover then click the latency line at the data point (t, ms), the way a mouse does it: Plotly picks the
# nearest point under the pointer on its drag layer and reports it as clickData.
CLICK_POINT = """
const [t, ms] = arguments;
const gd = document.querySelector('#chart-run-analysis-latency .js-plotly-plot');
gd.scrollIntoView({block: 'center', behavior: 'instant'});
const xa = gd._fullLayout.xaxis2, ya = gd._fullLayout.yaxis;
const box = gd.getBoundingClientRect();
const x = box.left + xa._offset + xa.l2p(t), y = box.top + ya._offset + ya.l2p(ms);
const target = document.elementFromPoint(x, y);
for (const type of ['mousemove', 'mousedown', 'mouseup', 'click']) {
  target.dispatchEvent(new MouseEvent(type, {bubbles: true, cancelable: true, clientX: x, clientY: y, view: window}));
}
return target.getAttribute('class');
"""


def peak_latency(services, coord: RunCoordinate) -> tuple[float, float]:
    """Return (time s, latency ms) of the run's highest detection latency."""
    data = services.analytics.get_cached_data(coord)
    peak = int(np.nanargmax(data.series.latency_ms))
    return float(data.series.detections.t[peak]), float(data.series.latency_ms[peak])


def analysed_run(app) -> RunCoordinate:
    """Seed the demo, take runs from the cloud to an analysis through the services, and return one whose
    highest-latency frame has tracks to draw."""
    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    services = app.server.extensions["bagboard.services"]
    runs = services.inventory.get_runs({})
    for _, row in runs[runs["raw_bags"] > 0].iterrows():
        coord = RunCoordinate(*(str(row[level]) for level in LEVELS))
        services.operations.execute_raw_download(coord)
        services.extraction.execute_extraction(coord)
        services.analytics.analyze_run(coord, force_refresh=True, with_plots=False)
        if services.analytics.get_cached_data(coord) is None:
            continue
        t, _ms = peak_latency(services, coord)
        if services.frames.frame_view(coord, t_s=t).tracks:
            return coord
    raise AssertionError("no demo run whose highest latency has tracks")


def test_viewer_opens_the_highest_latency_frame_and_steps_with_the_arrow_keys(dash_duo, app):
    coord = analysed_run(app)
    services = app.server.extensions["bagboard.services"]
    t, ms = peak_latency(services, coord)
    expected = services.frames.frame_view(coord, t_s=t)
    query = "&".join(f"{level}={value}" for level, value in zip(LEVELS, coord.to_path_tuple(), strict=True))

    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "viewer", PASSWORDS["viewer"], f"/run-analysis?{query}")
    dash_duo.wait_for_element("#chart-run-analysis-latency .main-svg", timeout=30)
    dash_duo.wait_for_contains_text("#ra-fi-index", "of", timeout=30)
    before = dash_duo.driver.current_url

    dash_duo.driver.execute_script(CLICK_POINT, t, ms)
    dash_duo.wait_for_contains_text("#ra-fi-index", f"{expected.frame_index:,} (", timeout=20)
    assert f"{expected.detection_latency_ms:,.1f} ms" == dash_duo.find_element("#ra-fi-latency").text
    # The frame image comes from the frame route, and its boxes are drawn over it, one trace per track.
    figure = dash_duo.driver.execute_script(
        "const gd = document.querySelector('#ra-fi-graph .js-plotly-plot');"
        "return {names: gd.data.map(d => d.name), image: (gd.layout.images || [{}])[0].source || ''};"
    )
    assert f"frame={expected.frame_index}" in figure["image"] and figure["image"].startswith("/frames/image?")
    track_names = [name for name in figure["names"] if name.startswith("track ")]
    assert len(track_names) == len({box.track_id for box in expected.tracks}) > 0
    assert ("Detections" in figure["names"]) == bool(expected.detections)
    wait_for(lambda: "t=" in dash_duo.driver.current_url and dash_duo.driver.current_url != before, 10, "URL has t")
    clicked_url = dash_duo.driver.current_url

    dash_duo.find_element("body").send_keys(Keys.ARROW_RIGHT)
    following = services.frames.frame_view(coord, position=expected.position + 1)
    dash_duo.wait_for_contains_text("#ra-fi-index", f"{following.frame_index:,} (", timeout=20)
    wait_for(lambda: dash_duo.driver.current_url != clicked_url, 10, "URL follows the step")
    assert f"t={following.t_s:.3f}" in dash_duo.driver.current_url

    # The shared link opens the inspector at that frame.
    dash_duo.driver.get(dash_duo.driver.current_url)
    dash_duo.wait_for_contains_text("#ra-fi-index", f"{following.frame_index:,} (", timeout=30)
