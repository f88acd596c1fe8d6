"""Sessions live in the shared Redis cache: ending one on one web process ends it on every other."""

from __future__ import annotations

import subprocess

import pytest

from tests.scaleout.conftest import Stack
from tests.scaleout.stack import BIN, REPO, DashClient

pytestmark = pytest.mark.slow


def layout_status(client: DashClient, base_url: str) -> int:
    return client.http.get(f"{base_url}/_dash-layout", timeout=10).status_code


def test_a_session_from_a_works_on_b_until_sign_out_everywhere_on_b(scale_stack: Stack) -> None:
    on_a = scale_stack.client("a", "ada")
    on_b = DashClient(scale_stack.url_b, "web B with A's cookie")
    on_b.http.cookies.update(on_a.http.cookies)  # a load balancer sends the next request to the other host
    assert layout_status(on_b, scale_stack.url_b) == 200
    other_device = scale_stack.client("b", "ada")

    response = on_b.http.post(
        f"{scale_stack.url_b}/logout/everywhere", headers={"Sec-Fetch-Site": "same-origin"}, allow_redirects=False
    )
    assert response.status_code == 302
    assert layout_status(on_a, scale_stack.url_a) == 401
    assert layout_status(other_device, scale_stack.url_b) == 401


def test_users_revoke_from_the_cli_ends_sessions_on_both_hosts(scale_stack: Stack) -> None:
    on_a, on_b = scale_stack.client("a", "bob"), scale_stack.client("b", "bob")
    assert layout_status(on_a, scale_stack.url_a) == layout_status(on_b, scale_stack.url_b) == 200
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "users", "revoke", "bob"],
        cwd=REPO,
        env=scale_stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert layout_status(on_a, scale_stack.url_a) == 401
    assert layout_status(on_b, scale_stack.url_b) == 401
