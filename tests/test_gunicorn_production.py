"""The attacks of issue 12 replayed against gunicorn in production mode, with its gunicorn.conf.py."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from src.auth.roles import Role
from src.auth.users import UserStore

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "operator-pass-1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    """Serve the app with `gunicorn app:server` (2 workers) in production mode on a free loopback port."""
    root = tmp_path_factory.mktemp("production")
    for bucket in ("raw", "ml"):
        (root / "buckets" / bucket).mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "BAGBOARD_ENV": "production",
        "BAGBOARD_SECRET_KEY": "production-test-secret-" + "s" * 32,
        "BAGBOARD_DATA_ROOT": str(root),
        "BAGBOARD_RAW_BUCKET": f"file://{root / 'buckets' / 'raw'}",
        "BAGBOARD_ML_BUCKET": f"file://{root / 'buckets' / 'ml'}",
        "BAGBOARD_CACHE_TYPE": "FileSystemCache",
        "BAGBOARD_INVENTORY_REFRESH_ON_START": "false",
        "BAGBOARD_LOG_FORMAT": "json",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
    }
    UserStore(root / "users.json").add("operator", PASSWORD, Role.OPERATOR)
    log = (root / "gunicorn.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "app:server"], cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (root / "gunicorn.log").read_text()[-2000:]
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a worker still booting
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def sign_in(base: str) -> str:
    """Sign in through the form and return the session cookie (sent by hand: it is Secure, we are on http)."""
    form = requests.get(base + "/login", timeout=10)
    cookie = form.cookies["bagboard_session"]
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]
    response = requests.post(
        base + "/login",
        data={"username": "operator", "password": PASSWORD, "csrf_token": token},
        headers={"Cookie": f"bagboard_session={cookie}"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302, response.text
    return response.cookies["bagboard_session"]


def get(base: str, path: str, cookie: str) -> requests.Response:
    return requests.get(
        base + path, headers={"Cookie": f"bagboard_session={cookie}"}, allow_redirects=False, timeout=10
    )


def test_a_cookie_captured_before_logout_is_refused_by_every_worker(server):
    cookie = sign_in(server)
    assert all(get(server, "/_dash-layout", cookie).status_code == 200 for _ in range(6))
    assert get(server, "/logout", cookie).status_code == 302
    assert [get(server, "/_dash-layout", cookie).status_code for _ in range(6)] == [401] * 6


def test_production_responses_carry_hsts_csp_and_no_store(server):
    cookie = sign_in(server)
    for response in (requests.get(server + "/login", timeout=10), get(server, "/coverage", cookie)):
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
    cookie_header = requests.get(server + "/login", timeout=10).headers["Set-Cookie"]
    assert "Secure" in cookie_header and "HttpOnly" in cookie_header


def test_a_10_mb_callback_body_gets_413(server):
    cookie = sign_in(server)
    response = requests.post(
        server + "/_dash-update-component",
        data=b"{" + b" " * (10 * 1024 * 1024) + b"}",
        headers={"Cookie": f"bagboard_session={cookie}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"] == "Request body too large: the limit is 8 MiB."


def test_gunicorn_refuses_long_request_lines_and_header_floods(server):
    assert requests.get(server + "/login?x=" + "a" * 5000, timeout=10).status_code in (400, 414)
    flood = {f"X-Flood-{i}": "1" for i in range(60)}
    assert requests.get(server + "/healthz", headers=flood, timeout=10).status_code in (400, 431)
    assert requests.get(server + "/healthz", headers={"X-Big": "a" * 9000}, timeout=10).status_code in (400, 431)
    assert requests.get(server + "/healthz", headers={"X-Fine": "a" * 4000}, timeout=10).status_code == 200
