"""Security headers on every response, the caching policy, and request size and nesting limits."""

from __future__ import annotations

import io
import re

import pytest

from src.core.errors import MAX_JSON_DEPTH
from tests.conftest import post_callback

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def assert_security_headers(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.request.path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    script_src = re.search(r"script-src ([^;]+)", csp)[1].split()
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert all(s == "'self'" or s.startswith("'sha256-") for s in script_src), script_src
    assert "http" not in csp  # no CDN or other origin anywhere


def test_login_page_health_and_redirects_carry_the_headers(client):
    for response in (client.get("/login"), client.get("/healthz"), client.get("/coverage")):
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in client.get("/login").headers  # development/test: plain HTTP


def test_authenticated_pages_and_callbacks_are_no_store(app, client, auth):
    auth.login("viewer")
    page = client.get("/coverage")
    layout = client.get("/_dash-layout")
    callback = post_callback(client, app, "page-content.children", {"url.pathname": "/coverage", "url.search": ""})
    for response in (page, layout, callback):
        assert response.status_code == 200
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store"


def test_errors_carry_the_headers(app, client, auth):
    assert_security_headers(client.get("/_dash-layout"))  # 401
    auth.login("viewer")
    for response in (
        client.post("/_dash-update-component", data=b"not json", content_type="application/json"),  # 400
        client.get("/assets/no-such-file.css"),  # 404
        client.get("/frames/image"),  # 400: bad input
    ):
        assert response.status_code >= 400
        assert_security_headers(response)
        assert response.headers["Cache-Control"] == "no-store"


def test_the_page_allows_exactly_dashs_inline_scripts(app, client, auth):
    auth.login("viewer")
    csp = client.get("/coverage").headers["Content-Security-Policy"]
    for digest in app.csp_hashes():
        assert digest in csp
    assert "worker-src 'self' blob:" in csp


def test_versioned_bundles_are_cached_for_a_year_with_an_etag(client, auth):
    auth.login("viewer")
    page = client.get("/coverage").get_data(as_text=True)
    bundle = re.search(r'src="(/_dash-component-suites/[^"]+\.v[^"]+\.js)"', page)[1]
    response = client.get(bundle)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert_security_headers(response)
    etag = response.headers["ETag"]
    again = client.get(bundle, headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.data


def test_assets_revalidate_and_versioned_assets_are_immutable(client):
    plain = client.get("/assets/10_theme.css")
    assert plain.status_code == 200 and plain.headers["Cache-Control"] == "public, no-cache" and plain.headers["ETag"]
    assert_security_headers(plain)
    versioned = client.get("/assets/10_theme.css?m=1700000000.0")
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_production_sends_hsts(settings):
    from app import create_app

    production = settings.with_overrides(env="production")
    client = create_app(production).server.test_client()
    assert client.get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_a_10_mb_callback_body_gets_413_with_one_line(client, auth):
    auth.login("viewer")
    body = b'{"output": "page-content.children", "inputs": [], "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    response = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert response.status_code == 413
    message = response.get_json()["error"]
    assert message == "Request body too large: the limit is 8 MiB." and "\n" not in message
    assert_security_headers(response)


def test_a_chunked_body_without_length_is_cut_at_the_limit(settings):
    from app import create_app

    app = create_app(settings.with_overrides(max_request_mb=1))
    client = app.server.test_client()
    from tests.conftest import AuthActions

    AuthActions(client).login("viewer")
    body = io.BytesIO(b'{"pad": "' + b"x" * (2 * 1024 * 1024) + b'"}')
    response = client.post(
        "/_dash-update-component",
        input_stream=body,
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_base={"wsgi.input_terminated": True},  # as gunicorn marks a chunked body
    )
    assert response.status_code == 413


def test_an_oversized_login_form_gets_413(client):
    response = client.post("/login", data={"username": "viewer", "password": "x" * 20_000, "csrf_token": "t"})
    assert response.status_code == 413
    assert response.get_data(as_text=True) == "Request body too large: the limit is 16 KiB.\n"


# Just past the bound the nesting check must answer (the shape check alone would say "malformed"); far past it the
# JSON parser's own recursion limit gives up first, which is refused as malformed.
@pytest.mark.parametrize(("depth", "why"), [(MAX_JSON_DEPTH + 1, "nests deeper"), (100_000, "malformed")])
def test_deeply_nested_callback_json_is_refused_with_400(client, auth, depth, why):
    auth.login("viewer")
    body = '{"output": "page-content.children", "inputs": ' + "[" * depth + "]" * depth + "}"
    response = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert response.status_code == 400
    assert why in response.get_json()["error"]
