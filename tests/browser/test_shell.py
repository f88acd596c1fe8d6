"""A person signs in, walks through the views, and signs out."""

from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


def test_sign_in_navigate_and_sign_out(dash_duo, app):
    dash_duo.start_server(app, navigate=False)
    dash_duo.driver.get(dash_duo.server.url + "/coverage")
    dash_duo.wait_for_element("#login-form", timeout=10)
    assert "/login?next=/coverage" in dash_duo.driver.current_url

    dash_duo.find_element("#username").send_keys("operator")
    dash_duo.find_element("#password").send_keys(PASSWORDS["operator"])
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#sidebar-user", "operator", timeout=15)
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Temporal coverage")
    assert dash_duo.find_element("#sidebar-role").text == "operator"

    for link, title in (
        ("#nav-run-analysis", "Run analysis"),
        ("#nav-download-manager", "Download manager"),
        ("#nav-home", "bagboard"),
        ("#nav-coverage", "Temporal coverage"),
    ):
        dash_duo.find_element(link).click()
        dash_duo.wait_for_text_to_equal(".bb-page-title", title)

    # Fits a 1280 px window without horizontal scrolling.
    assert dash_duo.driver.execute_script("return document.documentElement.scrollWidth") <= 1280

    dash_duo.find_element("#logout-link").click()
    dash_duo.wait_for_element("#login-form", timeout=10)
    dash_duo.driver.get(dash_duo.server.url + "/downloads")
    dash_duo.wait_for_element("#login-form", timeout=10)
    assert dash_duo.get_logs() in ([], None) or all("401" not in str(e) for e in dash_duo.get_logs())


def test_wrong_password_stays_on_login_with_message(dash_duo, app):
    dash_duo.start_server(app, navigate=False)
    dash_duo.driver.get(dash_duo.server.url + "/")
    dash_duo.wait_for_element("#login-form", timeout=10)
    dash_duo.find_element("#username").send_keys("viewer")
    dash_duo.find_element("#password").send_keys("wrong-password")
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#login-error", "Unknown user name or wrong password.", timeout=10)


def test_viewer_sees_operator_actions_disabled(dash_duo, app):
    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "viewer", PASSWORDS["viewer"], "/downloads")
    dash_duo.wait_for_text_to_equal(".bb-page-title", "Download manager")
    assert dash_duo.find_element("#dm-start-download").get_attribute("disabled") is not None


def test_log_out_ends_the_users_other_sessions(dash_duo, app):
    from tests.conftest import AuthActions

    elsewhere = AuthActions(app.server.test_client())  # the same user on another device
    elsewhere.login("operator")
    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "operator", PASSWORDS["operator"], "/coverage")
    dash_duo.wait_for_text_to_equal("#sidebar-user", "operator", timeout=15)
    assert elsewhere.client.get("/_dash-layout").status_code == 200

    dash_duo.find_element("#logout-link").click()
    dash_duo.wait_for_element("#login-form", timeout=10)
    assert elsewhere.client.get("/_dash-layout").status_code == 401
    dash_duo.driver.get(dash_duo.server.url + "/coverage")
    dash_duo.wait_for_element("#login-form", timeout=10)
