"""Sign-in, sign-out, the users file and its CLI, throttling and role checks."""

from __future__ import annotations

import json

import pytest
from cachelib import SimpleCache

from src.auth.roles import Role
from src.auth.throttle import LoginThrottle
from src.auth.users import UserStore, UserStoreError
from src.auth.views import safe_next


def test_login_with_good_credentials_redirects_home_and_opens_the_app(client, auth):
    response = auth.login("operator")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/_dash-layout").status_code == 200


def test_wrong_password_is_refused_with_a_clear_message(client, auth):
    response = auth.login("viewer", "wrong-password")
    assert response.status_code == 401
    assert b"Unknown user name or wrong password." in response.data
    assert client.get("/_dash-layout").status_code == 401


def test_login_form_without_csrf_token_is_refused(client):
    client.get("/login")
    response = client.post("/login", data={"username": "viewer", "password": "viewer-pass-1"})
    assert response.status_code == 400
    assert client.get("/_dash-layout").status_code == 401


def test_login_follows_a_same_origin_next(auth):
    response = auth.login("viewer", next_url="/coverage?cid=acme")
    assert response.headers["Location"] == "/coverage?cid=acme"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "http:/evil",
        "javascript:alert(1)",
        "\t//x",
    ],
)
def test_next_to_another_origin_is_refused(auth, target):
    response = auth.login("viewer", next_url=target)
    assert response.headers["Location"] == "/"
    assert safe_next(target, "/") == "/"


def test_logout_ends_the_session(client, auth):
    auth.login("viewer")
    response = auth.logout()
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert client.get("/_dash-layout").status_code == 401


def test_session_cookie_is_httponly_and_lax(client, auth):
    response = auth.login("viewer")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("bagboard_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_fifth_failure_locks_the_user_name_with_429(client, auth):
    for _ in range(5):
        assert auth.login("viewer", "nope-nope").status_code == 401
    response = auth.login("viewer")  # even the right password is refused while locked
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 14 * 60
    assert b"Too many failed sign-ins" in response.data


def test_throttle_holds_across_app_instances_sharing_the_cache(settings):
    from app import create_app

    first, second = create_app(settings), create_app(settings)
    from tests.conftest import AuthActions

    for _ in range(5):
        AuthActions(first.server.test_client()).login("admin", "bad-password")
    assert AuthActions(second.server.test_client()).login("admin").status_code == 429


def test_throttle_counts_per_address_and_expires():
    now = [1000.0]
    throttle = LoginThrottle(SimpleCache(), clock=lambda: now[0])
    for i in range(5):
        keys = LoginThrottle.keys(f"user{i}", "10.0.0.9")
        assert throttle.retry_after(keys) == 0
        throttle.record_failure(keys)
    assert throttle.retry_after(LoginThrottle.keys("someone-else", "10.0.0.9")) > 0
    assert throttle.retry_after(LoginThrottle.keys("someone-else", "10.0.0.10")) == 0
    now[0] += 15 * 60 + 1
    assert throttle.retry_after(LoginThrottle.keys("someone-else", "10.0.0.9")) == 0


def test_failures_outside_the_window_do_not_count():
    now = [0.0]
    throttle = LoginThrottle(SimpleCache(), clock=lambda: now[0])
    keys = LoginThrottle.keys("ann", "1.2.3.4")
    for _ in range(4):
        throttle.record_failure(keys)
    now[0] += 16 * 60
    throttle.record_failure(keys)
    assert throttle.retry_after(keys) == 0


def test_user_store_keeps_hashes_not_passwords(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add("ann", "correct horse battery", Role.OPERATOR)
    text = (tmp_path / "users.json").read_text()
    assert "correct horse battery" not in text
    assert json.loads(text)["users"]["ann"]["password_hash"].startswith("scrypt:")
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    assert store.authenticate("ann", "correct horse battery").role is Role.OPERATOR
    assert store.authenticate("ann", "wrong") is None
    assert store.authenticate("nobody", "x") is None


def test_user_store_reads_and_writes_toml(tmp_path):
    store = UserStore(tmp_path / "users.toml")
    store.add("bob", "long-enough-password", Role.ADMIN)
    store.set_role("bob", Role.VIEWER)
    assert UserStore(tmp_path / "users.toml").get("bob").role is Role.VIEWER


def test_corrupt_users_file_names_the_file(tmp_path):
    path = tmp_path / "users.json"
    path.write_text("{not json")
    with pytest.raises(UserStoreError, match=str(path)):
        UserStore(path).all()
    path.write_text(json.dumps({"users": {"eve": {"password_hash": "plaintext", "role": "admin"}}}))
    with pytest.raises(UserStoreError, match="scrypt or pbkdf2"):
        UserStore(path).all()


def test_users_cli_add_list_set_role_remove(app, settings):
    runner = app.server.test_cli_runner()
    result = runner.invoke(args=["users", "add", "ann", "--role", "operator"], input="s3cret-password\n")
    assert result.exit_code == 0, result.output
    stored = json.loads(settings.users_file.read_text())["users"]["ann"]
    assert stored["role"] == "operator" and "s3cret-password" not in json.dumps(stored)

    assert "ann\toperator" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "set-role", "ann", "admin"]).exit_code == 0
    assert UserStore(settings.users_file).get("ann").role is Role.ADMIN

    duplicate = runner.invoke(args=["users", "add", "ann"], input="another-password\n")
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    short = runner.invoke(args=["users", "add", "bo"], input="short\n")
    assert short.exit_code != 0 and "at least 8 characters" in short.output
    assert runner.invoke(args=["users", "remove", "ann"]).exit_code == 0
    assert UserStore(settings.users_file).get("ann") is None


def test_role_changes_apply_to_open_sessions(app, client, auth, settings):
    from tests.test_security import start_download

    auth.login("operator")
    assert start_download(client, app).status_code == 200
    UserStore(settings.users_file).set_role("operator", Role.VIEWER)
    assert start_download(client, app).status_code == 403


def test_removed_user_loses_the_session(client, auth, settings):
    auth.login("viewer")
    UserStore(settings.users_file).remove("viewer")
    assert client.get("/_dash-layout").status_code == 401


def test_demo_account_only_signs_in_during_development(data_root):
    from app import create_app
    from src.config import Settings
    from tests.conftest import AuthActions

    for env, expected in (("development", 302), ("test", 401)):
        settings = Settings.from_env({"BAGBOARD_ENV": env, "BAGBOARD_DATA_ROOT": str(data_root / env)})
        store = UserStore(settings.users_file)
        store.add("demo", "demo", Role.ADMIN, demo=True)
        client = create_app(settings).server.test_client()
        page = client.get("/login")
        assert (b"Demo mode" in page.data) is (env == "development")
        assert AuthActions(client).login("demo", "demo").status_code == expected
