"""Step through 50 frames of the frame inspector in headless Chromium: frames per second and bytes per frame.

Writes a run of 640x480 rgb8 frames with six tracked boxes each (the extraction bench's messages, MCAP with zstd
chunks) into a temp data root, extracts it, serves the app on 127.0.0.1 (a free port), signs in, opens the run at
its first frame and presses the right arrow --steps times, each time waiting until the next frame's facts are shown
and its image has arrived (the browser's resource timing). Reports the steps per second and the image bytes.

Run: .venv/bin/python bench/bench_inspector_browser.py [--steps 50] [--mb 120]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import emit
from bench_frames import write_bag
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from src.auth.roles import Role
from src.auth.users import UserStore
from src.config import Settings
from src.extraction import extract_run
from src.imaging.encode import MAX_BYTES
from src.models import RunCoordinate

MB = 1024 * 1024
FPS_TARGET = 8.0
COORD = RunCoordinate("bench", "inspector", "field", "tw", "lb", "2024-06-01T10-00-00")
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway user of a throwaway data root
STEP = """
const [frames, done] = [arguments[0], arguments[arguments.length - 1]];
const sizes = [];
const started = performance.now();
const text = () => (document.getElementById('ra-fi-index') || {}).textContent || '';
const image = (f) => performance.getEntriesByType('resource')
  .find(e => e.name.includes('/frames/image?') && e.name.includes('frame=' + f + '&') && e.responseEnd > 0);
function step(i) {
  if (i === frames.length) { done([performance.now() - started, sizes]); return; }
  document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight', bubbles: true}));
  const want = frames[i].toLocaleString('en-US') + ' (';
  (function wait() {
    const entry = text().startsWith(want) && image(frames[i]);
    if (entry) { sizes.push(entry.encodedBodySize); step(i + 1); } else { requestAnimationFrame(wait); }
  })();
}
step(0);
"""
IMAGE_LOADED = """
const frame = arguments[0];
return performance.getEntriesByType('resource')
  .filter(e => e.name.includes('/frames/image?') && e.name.includes('frame=' + frame + '&') && e.responseEnd > 0)
  .map(e => e.encodedBodySize);
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--mb", type=int, default=120, help="bag size to write (MiB of frames before zstd)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bagboard-bench-inspector-"))
    environment(root)
    server = driver = None
    try:
        settings = Settings.from_env()
        UserStore(settings.users_file).add("bench", PASSWORD, Role.VIEWER)
        from app import create_app

        app = create_app(settings)
        services = app.server.extensions["bagboard.services"]
        # The run is in the raw bucket (the view lists runs from the inventory), downloaded and extracted.
        bucket = Path(settings.raw_bucket.removeprefix("file://")).joinpath(*COORD.to_path_tuple())
        bucket.mkdir(parents=True)
        frames = write_bag(bucket / "run", "mcap", args.mb * MB // 2)
        services.inventory.refresh_inventory()
        raw = services.local_state.raw_path(COORD)
        shutil.copytree(bucket, raw)
        extract_run(raw, services.local_state.processed_path(COORD))
        server = make_server("127.0.0.1", 0, app.server, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        driver = browser()
        wait = WebDriverWait(driver, 60, poll_frequency=0.005)  # the default 0.5 s would be most of a step
        query = "&".join(f"{k}={v}" for k, v in COORD.to_dict().items())
        driver.get(f"{base}/login")
        driver.find_element(By.ID, "username").send_keys("bench")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login-submit").click()
        wait.until(lambda d: d.find_elements(By.ID, "sidebar"))
        driver.get(f"{base}/run-analysis?{query}&t=0")
        wait.until(lambda d: " of " in index_text(d))
        run = services.frames.run_frames(COORD)
        wait.until(lambda d: d.execute_script(IMAGE_LOADED, int(run.frame_index[0])))
        steps = min(args.steps, run.count - 1)
        expected = [int(run.frame_index[position]) for position in range(1, steps + 1)]
        driver.set_script_timeout(120)
        # Driven inside the page, as a person holding the arrow key would: each step waits for the frame's facts
        # and its image, checked every animation frame, so WebDriver round trips are not counted.
        elapsed, sizes = driver.execute_async_script(STEP, expected)
        elapsed /= 1000
        timings = driver.execute_script(
            "const r = performance.getEntriesByType('resource');"
            "const ms = (part) => r.filter(e => e.name.includes(part)).slice(-arguments[0]).map(e => e.duration);"
            "return [ms('_dash-update-component'), ms('/frames/image?')];",
            steps,
        )
        callback_ms, image_ms = (statistics.median(t) if t else 0.0 for t in timings)
        fps = steps / elapsed
        print(f"run: {run.count} frames 640x480 rgb8, 6 tracked boxes each ({frames} written)")
        print(f"stepped {steps} frames in {elapsed:.2f} s: {fps:.1f} frames/s (target >= {FPS_TARGET:g})")
        print(f"per step, median: callback {callback_ms:.0f} ms, image request {image_ms:.0f} ms")
        print(f"image bytes per frame: max {max(sizes) / 1e3:.0f} kB, median {statistics.median(sizes) / 1e3:.0f} kB")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        emit(
            "inspector",
            f"stepping {steps} frames (640x480, boxes) with the arrow key in headless Chromium",
            f"{fps:.1f} frames/s",
            f">= {FPS_TARGET:g} frames/s",
            fps >= FPS_TARGET,
            f"each step: callback ({callback_ms:.0f} ms median), figure, image ({image_ms:.0f} ms) fetched and shown",
        )
        emit(
            "inspector",
            "image bytes per 640x480 frame received by the browser (camera noise: JPEG's worst case)",
            f"{max(sizes) / 1e3:.0f} kB max",
            f"<= {MAX_BYTES / 1e3:.0f} kB",
            max(sizes) <= MAX_BYTES,
            f"median {statistics.median(sizes) / 1e3:.0f} kB",
        )
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            server.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def environment(root: Path) -> None:
    """Point the app (app.py builds one from the environment on import) at a throwaway data root."""
    os.environ.update(
        {
            "BAGBOARD_ENV": "test",
            "BAGBOARD_DATA_ROOT": str(root / "data"),
            "BAGBOARD_SECRET_KEY": "bench-secret-" + "x" * 32,
            "BAGBOARD_INVENTORY_REFRESH_ON_START": "false",
            "BAGBOARD_LOG_LEVEL": "WARNING",
        }
    )


def index_text(driver: webdriver.Chrome) -> str:
    """Return the inspector's 'Frame' fact (read in the page: the facts are re-rendered at every step)."""
    return driver.execute_script("const e = document.getElementById('ra-fi-index'); return e ? e.textContent : '';")


def browser() -> webdriver.Chrome:
    """Return headless Chromium, off the network, as the browser tests use it."""
    options = Options()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium:
        options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--no-first-run", "--disable-background-networking"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    return webdriver.Chrome(options=options)


if __name__ == "__main__":
    raise SystemExit(main())
