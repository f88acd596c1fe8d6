"""Throttling slows guessing but cannot be aimed: someone's failures never lock another user out."""

from __future__ import annotations

from cachelib import SimpleCache

from src.auth.throttle import ADDRESS_LIMIT, LoginThrottle
from tests.conftest import PASSWORDS


class Browser:
    """A test client posting the login form from a chosen address."""

    def __init__(self, app, address: str = "10.0.0.1") -> None:
        self.client = app.server.test_client()
        self.address = address

    def login(self, username: str, password: str | None = None):
        environ = {"REMOTE_ADDR": self.address}
        self.client.get("/login", environ_base=environ)
        with self.client.session_transaction() as session:
            token = session["csrf_token"]
        form = {
            "username": username,
            "password": PASSWORDS.get(username, "") if password is None else password,
            "csrf_token": token,
        }
        return self.client.post("/login", data=form, environ_base=environ)


def make_throttle() -> tuple[LoginThrottle, list[float]]:
    now = [1000.0]
    return LoginThrottle(SimpleCache(), clock=lambda: now[0]), now


def test_someones_typos_do_not_block_another_user_at_the_same_address(app):
    office = Browser(app, "192.0.2.10")
    for _ in range(6):
        office.login("viewer", "typo-typo")
    assert office.login("viewer").status_code == 429
    assert Browser(app, "192.0.2.10").login("operator").status_code == 302


def test_the_same_user_from_another_address_is_not_locked_by_the_pair_limit(app):
    for _ in range(5):
        Browser(app, "198.51.100.7").login("viewer", "typo-typo")
    assert Browser(app, "198.51.100.7").login("viewer").status_code == 429
    assert Browser(app, "198.51.100.8").login("viewer").status_code == 302


def test_per_user_backoff_holds_against_rotating_addresses(app):
    for i in range(10):
        assert Browser(app, f"203.0.113.{i}").login("admin", f"guess-{i}").status_code == 401
    response = Browser(app, "203.0.113.99").login("admin")  # a fresh address, even the right password
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert Browser(app, "203.0.113.99").login("viewer").status_code == 302  # other users are unaffected


def test_a_browser_that_signed_in_before_is_not_locked_out_by_an_attack_on_its_user(app):
    own = Browser(app, "192.0.2.50")
    assert own.login("admin").status_code == 302
    own.client.get("/logout")
    for i in range(12):
        Browser(app, f"203.0.113.{i}").login("admin", "guess")
    assert Browser(app, "203.0.113.200").login("admin").status_code == 429
    assert own.login("admin").status_code == 302  # known device: counted on its own, not the user-wide key


def test_a_forged_known_device_cookie_is_ignored(app):
    for i in range(10):
        Browser(app, f"203.0.113.{i}").login("admin", "guess")
    forger = Browser(app, "203.0.113.77")
    forger.client.set_cookie("bagboard_device", "eyJpZCI6ImEiLCJuYW1lcyI6WyJhZG1pbiJdfQ.forged.sig")
    assert forger.login("admin").status_code == 429


def test_pair_lockout_backs_off_from_one_minute_to_fifteen():
    throttle, now = make_throttle()
    limits = LoginThrottle.limits("ann", "10.1.1.1")
    for _ in range(4):
        throttle.record_failure(limits)
    assert throttle.retry_after(limits) == 0
    waits = []
    for _ in range(6):
        throttle.record_failure(limits)
        waits.append(throttle.retry_after(limits))
        now[0] += waits[-1]  # wait out the lock, then fail again
    assert waits[:4] == [61, 121, 241, 481]
    assert max(waits) <= 15 * 60 + 1


def test_spraying_from_one_address_locks_unknown_attempts_only_at_the_high_limit():
    throttle, _ = make_throttle()
    for i in range(ADDRESS_LIMIT - 1):
        throttle.record_failure(LoginThrottle.limits(f"name{i % 12}", "10.9.9.9"))
    assert throttle.retry_after(LoginThrottle.limits("someone-else", "10.9.9.9")) == 0
    throttle.record_failure(LoginThrottle.limits("name-last", "10.9.9.9"))
    assert throttle.retry_after(LoginThrottle.limits("someone-else", "10.9.9.9")) > 14 * 60
    assert throttle.retry_after(LoginThrottle.limits("someone-else", "10.9.9.10")) == 0
    # A browser known for its user still signs in from the sprayed address.
    assert throttle.retry_after(LoginThrottle.limits("someone-else", "10.9.9.9", device="known-device")) == 0


def test_failures_outside_the_window_do_not_count():
    throttle, now = make_throttle()
    limits = LoginThrottle.limits("ann", "1.2.3.4")
    for _ in range(4):
        throttle.record_failure(limits)
    now[0] += 16 * 60
    throttle.record_failure(limits)
    assert throttle.retry_after(limits) == 0


def test_user_names_are_counted_case_insensitively():
    throttle, _ = make_throttle()
    for _ in range(5):
        throttle.record_failure(LoginThrottle.limits("Ann", "1.2.3.4"))
    assert throttle.retry_after(LoginThrottle.limits(" ann ", "1.2.3.4")) > 0
