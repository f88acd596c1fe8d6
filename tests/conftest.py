"""Shared fixtures: settings on a temp data root, the app, a client and a sign-in helper."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings as hypothesis_settings

# Property tests check behaviour, not speed: on a shared 2-core machine a per-example deadline only makes them flaky.
hypothesis_settings.register_profile("bagboard", deadline=None)
hypothesis_settings.load_profile("bagboard")

# app.py builds a module-level app on import: point it at a throwaway data root first.
_IMPORT_ROOT = tempfile.mkdtemp(prefix="bagboard-import-")
atexit.register(shutil.rmtree, _IMPORT_ROOT, ignore_errors=True)
os.environ.setdefault("BAGBOARD_ENV", "test")
os.environ.setdefault("BAGBOARD_DATA_ROOT", _IMPORT_ROOT)
os.environ.setdefault("BAGBOARD_LOG_FORMAT", "console")

from flask.testing import FlaskClient  # noqa: E402

from src.auth.roles import Role  # noqa: E402
from src.auth.users import UserStore  # noqa: E402
from src.config import Settings  # noqa: E402
from tests.helpers import callback_body  # noqa: E402

if TYPE_CHECKING:
    from tests.support.gcs import FakeGcs, GcsTestBucket

PASSWORDS = {"viewer": "viewer-pass-1", "operator": "operator-pass-1", "admin": "admin-pass-1"}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """Return an empty data root."""
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def settings(data_root: Path) -> Settings:
    """Return test settings on the temp data root, with one user per role."""
    settings = Settings.from_env(
        {
            "BAGBOARD_ENV": "test",
            "BAGBOARD_SECRET_KEY": "test-secret-key-" + "x" * 32,
            "BAGBOARD_DATA_ROOT": str(data_root),
            "BAGBOARD_CACHE_TYPE": "FileSystemCache",
            # Tests build inventories explicitly; a background rebuild would race with them.
            "BAGBOARD_INVENTORY_REFRESH_ON_START": "false",
        }
    )
    store = UserStore(settings.users_file)
    for role, password in PASSWORDS.items():
        store.add(role, password, Role(role))
    return settings


@pytest.fixture
def app(settings: Settings):
    """Return a Dash app built from the test settings."""
    from app import create_app

    return create_app(settings)


@pytest.fixture
def client(app) -> FlaskClient:
    """Return a Flask test client without a session."""
    return app.server.test_client()


class AuthActions:
    """Sign in and out through the real login form."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def csrf_token(self) -> str:
        self.client.get("/login")
        with self.client.session_transaction() as session:
            return session["csrf_token"]

    def login(self, username: str = "viewer", password: str | None = None, next_url: str = ""):
        token = self.csrf_token()
        return self.client.post(
            "/login",
            data={
                "username": username,
                "password": PASSWORDS.get(username, "") if password is None else password,
                "csrf_token": token,
                "next": next_url,
            },
        )

    def logout(self):
        return self.client.get("/logout")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Return the sign-in helper bound to the client."""
    return AuthActions(client)


def find_callback(app, output: str, via: str | None = None) -> tuple[str, dict]:
    """Return (key, spec) of the callback with output ('id.prop') among its outputs (and input via)."""
    for key, spec in app.callback_map.items():
        outputs = [part.split("@")[0] for part in key.strip(".").split("...")]
        inputs = [f"{item['id']}.{item['property']}" for item in spec["inputs"]]
        if output in outputs and (via is None or via in inputs):
            return key, spec
    raise KeyError(output)


def post_callback(
    client, app, output: str, values: dict[str, Any], triggered: str | None = None, via: str | None = None
):
    """Call the callback producing output the way the browser does; values maps 'id.prop' to a value."""
    key, spec = find_callback(app, output, via)
    body = callback_body(key, spec, values, triggered)
    return client.post("/_dash-update-component", json=body)


@pytest.fixture(scope="session")
def fake_gcs() -> Iterator[FakeGcs]:
    """Run one fake-gcs-server (in memory) behind the fault proxy for the session (per xdist worker)."""
    from tests.support.gcs import FakeGcs

    with FakeGcs() as gcs:
        yield gcs


@pytest.fixture
def gcs(fake_gcs: FakeGcs, monkeypatch: pytest.MonkeyPatch) -> GcsTestBucket:
    """Give a test an empty bucket of its own, a clean proxy and STORAGE_EMULATOR_HOST pointing at the proxy."""
    fake_gcs.proxy.reset()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    return fake_gcs.new_bucket()
