"""An operator downloads runs from the table with visible progress; a viewer watches but cannot act."""

from __future__ import annotations

import time

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import click, login, pytest_setup_options
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


def sign_in(driver, base: str, username: str, path: str) -> None:
    """Sign a second, independent browser in through the form."""
    driver.get(base + path)
    WebDriverWait(driver, 10).until(EC.presence_of_element_located((By.ID, "login-form")))
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORDS[username])
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.ID, "sidebar")))


def test_operator_downloads_and_a_viewer_sees_the_job(dash_duo, app, settings, tmp_path):
    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    dash_duo.start_server(app, navigate=False)
    base = dash_duo.server.url
    login(dash_duo, "operator", PASSWORDS["operator"], "/downloads?cid=acme")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Download manager")
    dash_duo.wait_for_element("#dm-grid .ag-row .ag-checkbox-input", timeout=15)
    row = dash_duo.find_elements("#dm-grid .ag-row")[0]
    coordinate = row.find_element(By.CSS_SELECTOR, "[col-id=coordinate]").text
    row.find_element(By.CSS_SELECTOR, ".ag-checkbox-input").click()
    dash_duo.wait_for_text_to_equal("#dm-selection", "1 selected")

    click(dash_duo, "#dm-plan-download")
    dash_duo.wait_for_element("#dm-plan-rows", timeout=10)
    assert coordinate in dash_duo.find_element("#dm-plan-rows").text

    click(dash_duo, "#dm-start-download")
    dash_duo.wait_for_text_to_equal("#dm-tabs .nav-link.active", "Jobs", timeout=10)  # it switches to the jobs
    dash_duo.wait_for_contains_text("#dm-jobs", coordinate, timeout=10)
    dash_duo.wait_for_contains_text("#dm-jobs .progress", "100 %", timeout=30)
    dash_duo.wait_for_contains_text("#dm-jobs", "complete", timeout=10)
    # The table follows: the run is downloaded and its next action is extraction.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        first = dash_duo.find_elements("#dm-grid .ag-row")[0]
        if first.find_element(By.CSS_SELECTOR, "[col-id=next_action]").text == "extract":
            break
        time.sleep(0.3)
    else:
        raise AssertionError("the run table did not show the download")

    options = pytest_setup_options()
    for flag in ("--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'viewer-profile'}"):
        options.add_argument(flag)  # a second browser needs its own profile (dash_duo adds the sandbox flags)
    viewer = webdriver.Chrome(options=options)
    try:
        sign_in(viewer, base, "viewer", "/downloads?cid=acme&tab=dm-tab-jobs")
        WebDriverWait(viewer, 15).until(EC.text_to_be_present_in_element((By.ID, "dm-jobs"), coordinate))
        assert "by operator" in viewer.find_element(By.ID, "dm-jobs").text
        assert viewer.find_element(By.ID, "dm-start-download").get_attribute("disabled") is not None
    finally:
        viewer.quit()
