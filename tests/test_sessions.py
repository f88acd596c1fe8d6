"""Sessions end when they should: sign-out, sign out everywhere, revocation, role/password change, idle, lifetime."""

from __future__ import annotations

import json
from http.cookies import SimpleCookie

import pytest

from src.auth.roles import Role
from src.auth.users import UserStore
from tests.conftest import PASSWORDS, AuthActions

HOUR = 3600.0


class FrozenClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> FrozenClock:
    frozen = FrozenClock()
    app.server.extensions["bagboard.sessions"].clock = frozen
    return frozen


def session_cookie(response) -> str:
    """Return the bagboard_session value a response sets."""
    for header in response.headers.getlist("Set-Cookie"):
        cookie = SimpleCookie(header)
        if "bagboard_session" in cookie:
            return cookie["bagboard_session"].value
    raise AssertionError("no session cookie set")


def replay(app, cookie: str):
    """Load the app's layout from a fresh client holding only a captured session cookie."""
    other = app.server.test_client()
    other.set_cookie("bagboard_session", cookie)
    return other.get("/_dash-layout")


def test_a_cookie_captured_before_logout_gets_401_after_it(app, client, auth):
    captured = session_cookie(auth.login("viewer"))
    assert replay(app, captured).status_code == 200
    auth.logout()
    assert replay(app, captured).status_code == 401
    assert client.get("/_dash-layout").status_code == 401


def test_logout_ends_every_session_of_that_user_only(app, auth):
    laptop, colleague = AuthActions(app.server.test_client()), AuthActions(app.server.test_client())
    laptop.login("viewer")
    colleague.login("operator")
    auth.login("viewer")
    auth.logout()
    assert laptop.client.get("/_dash-layout").status_code == 401
    assert colleague.client.get("/_dash-layout").status_code == 200
    assert laptop.login("viewer").status_code == 302  # signing in again works at once
    assert laptop.client.get("/_dash-layout").status_code == 200


def test_sign_out_everywhere_ends_every_session_of_the_user_only(app, client, auth):
    laptop, phone, colleague = (AuthActions(app.server.test_client()) for _ in range(3))
    laptop.login("operator")
    phone.login("operator")
    colleague.login("viewer")
    response = laptop.client.post("/logout/everywhere", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert laptop.client.get("/_dash-layout").status_code == 401
    assert phone.client.get("/_dash-layout").status_code == 401
    assert colleague.client.get("/_dash-layout").status_code == 200
    assert phone.login("operator").status_code == 302  # signing in again works at once
    assert phone.client.get("/_dash-layout").status_code == 200


def test_sign_out_everywhere_refuses_a_cross_site_request(client, auth):
    auth.login("viewer")
    assert client.post("/logout/everywhere", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/logout/everywhere", headers={"Origin": "https://evil.example"}).status_code == 403
    assert client.get("/_dash-layout").status_code == 200


def test_the_sidebar_offers_log_out(client, auth):
    auth.login("viewer")
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert '"logout-link"' in layout and "every browser and device" in layout


def test_a_cross_site_logout_link_ends_only_that_browsers_session(app, client, auth):
    laptop = AuthActions(app.server.test_client())
    laptop.login("viewer")
    auth.login("viewer")
    assert client.get("/logout", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 302
    assert client.get("/_dash-layout").status_code == 401
    assert laptop.client.get("/_dash-layout").status_code == 200


def test_users_revoke_ends_sessions_on_another_app_sharing_the_cache(settings):
    from app import create_app

    web, admin_cli = create_app(settings), create_app(settings)
    browser = AuthActions(web.server.test_client())
    browser.login("operator")
    assert browser.client.get("/_dash-layout").status_code == 200
    result = admin_cli.server.test_cli_runner().invoke(args=["users", "revoke", "operator"])
    assert result.exit_code == 0 and "every session of operator is ended" in result.output
    assert browser.client.get("/_dash-layout").status_code == 401
    unknown = admin_cli.server.test_cli_runner().invoke(args=["users", "revoke", "nobody"])
    assert unknown.exit_code != 0 and "no user named" in unknown.output


def test_password_change_ends_sessions_and_the_new_password_works(app, client, auth):
    auth.login("viewer")
    result = app.server.test_cli_runner().invoke(args=["users", "set-password", "viewer"], input="brand-new-pass\n")
    assert result.exit_code == 0, result.output
    assert client.get("/_dash-layout").status_code == 401
    assert auth.login("viewer", PASSWORDS["viewer"]).status_code == 401
    assert auth.login("viewer", "brand-new-pass").status_code == 302


def test_a_role_change_made_by_editing_the_file_still_ends_sessions(client, auth, settings):
    auth.login("admin")
    UserStore(settings.users_file).set_role("admin", Role.VIEWER)  # not through the CLI: no revoke call
    assert client.get("/_dash-layout").status_code == 401


def test_idle_timeout_ends_a_quiet_session(app, client, auth, clock):
    app.server.extensions["bagboard.sessions"].lifetime = 100 * HOUR  # only the idle timeout is under test
    auth.login("viewer")
    clock.now += 7.9 * HOUR
    assert client.get("/_dash-layout").status_code == 200  # activity restarts the idle clock
    clock.now += 7.9 * HOUR
    assert client.get("/_dash-layout").status_code == 200
    clock.now += 8 * HOUR + 1
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    clock.now += 1  # the session does not come back
    assert client.get("/_dash-layout").status_code == 401


def test_absolute_lifetime_ends_even_a_busy_session(client, auth, clock):
    auth.login("viewer")
    for _ in range(11):
        clock.now += HOUR
        assert client.get("/_dash-layout").status_code == 200
    clock.now += HOUR
    assert client.get("/_dash-layout").status_code == 401


def test_timeouts_come_from_the_settings(settings):
    from app import create_app

    app = create_app(settings.with_overrides(session_idle_hours=0.5, session_lifetime_hours=2.0))
    registry = app.server.extensions["bagboard.sessions"]
    assert (registry.idle, registry.lifetime) == (1800, 7200)
    clock = FrozenClock()
    registry.clock = clock
    client = app.server.test_client()
    AuthActions(client).login("viewer")
    clock.now += 1801
    assert client.get("/_dash-layout").status_code == 401


def test_a_session_whose_record_was_evicted_fails_closed(app, client, auth):
    auth.login("viewer")
    app.server.extensions["bagboard.sessions"].cache.clear()
    assert client.get("/_dash-layout").status_code == 401


def test_a_forged_session_id_is_refused(app, client, auth):
    auth.login("viewer")
    with client.session_transaction() as session:
        session["sid"] = "guessed-" + "a" * 40
    assert client.get("/_dash-layout").status_code == 401
