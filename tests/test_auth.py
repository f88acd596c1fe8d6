"""Sign-in, sign-out, the users file and its CLI, throttling and role checks."""

from __future__ import annotations

import json

import pytest

from src.auth.roles import Role
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


def test_fifth_failure_locks_the_user_name_from_that_address_with_429(client, auth):
    for _ in range(5):
        assert auth.login("viewer", "nope-nope").status_code == 401
    response = auth.login("viewer")  # even the right password is refused while locked
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 61
    assert b"Too many failed sign-ins" in response.data


def test_throttle_holds_across_app_instances_sharing_the_cache(settings):
    from app import create_app

    first, second = create_app(settings), create_app(settings)
    from tests.conftest import AuthActions

    for _ in range(5):
        AuthActions(first.server.test_client()).login("admin", "bad-password")
    assert AuthActions(second.server.test_client()).login("admin").status_code == 429


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


def test_role_changes_end_open_sessions(app, client, auth, settings):
    from tests.test_security import start_download

    auth.login("operator")
    assert start_download(client, app).status_code == 200
    UserStore(settings.users_file).set_role("operator", Role.VIEWER)
    # The old session's next operator callback is refused: sign in again (and then it is a viewer's 403).
    assert start_download(client, app).status_code == 401
    auth.login("operator")
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
