"""Browser tests drive headless Chromium through dash[testing]; CI must run them, never skip."""

from __future__ import annotations

import os
import shutil
import socket

import pytest
from dash.testing.application_runners import BaseDashRunner
from selenium.common.exceptions import ElementClickInterceptedException
from selenium.webdriver.chrome.options import Options

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")


def pytest_setup_options() -> Options:
    """Give dash_duo a headless Chromium that stays off the network."""
    options = Options()
    if CHROMIUM:
        options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture(autouse=True)
def _free_server_port() -> None:
    # dash_duo counts ports up from 58050 in every process: parallel runs (xdist, two checkouts) would collide.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        BaseDashRunner._next_port = probe.getsockname()[1]


@pytest.fixture(autouse=True)
def _require_browser() -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    message = "Chromium and chromedriver are needed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run browser tests")
    pytest.skip(message)


def login(dash_duo, username: str, password: str, path: str = "/") -> None:
    """Sign in through the real form and wait for the shell."""
    dash_duo.driver.get(dash_duo.server.url + path)
    dash_duo.wait_for_element("#login-form", timeout=10)
    dash_duo.find_element("#username").send_keys(username)
    dash_duo.find_element("#password").send_keys(password)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_element("#sidebar", timeout=15)


def click(dash_duo, selector: str) -> None:
    """Scroll an element to the middle of the window and click it, as a person would."""
    element = dash_duo.find_element(selector)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    try:
        element.click()
    except ElementClickInterceptedException:
        # A live region (the polling jobs list) can shift the layout between scroll and click.
        dash_duo.driver.execute_script("arguments[0].click()", element)
