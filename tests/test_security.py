"""Every route needs a session except login, health and static files; roles are enforced on the server."""

from __future__ import annotations

import re

import pytest

from tests.conftest import post_callback

PUBLIC = {"/login", "/logout", "/healthz", "/_favicon.ico"}
DASH_INTERNAL = ("/_dash-layout", "/_dash-dependencies", "/_dash-update-component", "/_reload-hash")


def concrete_paths(url_map) -> list[tuple[str, str]]:
    """Turn every url rule into a concrete (method, path) with sample arguments."""
    paths = []
    for rule in url_map.iter_rules():
        path = re.sub(
            r"<(?:[a-z]+:)?(\w+)>",
            lambda m: "dash/dash_renderer.min.js" if m[1] == "fingerprinted_path" else "x",
            rule.rule,
        )
        path = path.replace("/x/dash/", "/dash/")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.append((method, path))
    return paths


def test_every_route_is_walled_or_public(app, client):
    seen = 0
    for method, path in concrete_paths(app.server.url_map):
        response = client.open(path, method=method, json={} if method == "POST" else None)
        seen += 1
        if path in PUBLIC or path.startswith("/assets/"):
            assert response.status_code in (200, 302, 400, 404, 405), (method, path, response.status_code)
        elif path.startswith(("/_dash-", "/_reload-hash")) or method != "GET":
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.is_json and response.get_json()["error"] == "authentication required"
        else:
            assert response.status_code == 302, (method, path, response.status_code)
            assert response.headers["Location"].startswith("/login?next=")
    assert seen >= 12


@pytest.mark.parametrize("path", DASH_INTERNAL)
def test_dash_internal_endpoints_answer_401_json(client, path):
    method = "POST" if path == "/_dash-update-component" else "GET"
    response = client.open(path, method=method, json={})
    assert response.status_code == 401 and response.get_json()["error"] == "authentication required"


def test_component_bundles_need_a_session(client):
    assert client.get("/_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js").status_code == 401


@pytest.mark.parametrize("path", ["/", "/coverage", "/downloads?cid=acme", "/no-such-page"])
def test_page_loads_redirect_to_login_keeping_the_target(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=" + path.replace("?", "%3F").replace("=", "%3D")


def test_public_paths_work_without_a_session(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    assert client.get("/login").status_code == 200
    assert client.get("/assets/10_theme.css").status_code == 200


def test_health_reports_version_and_echoes_request_id(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert response.get_json()["version"]
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)


FORGED = {
    "dm-start-download.n_clicks": 1,
    "dm-grid.selectedRows": [{"coordinate": "acme/north/field-01/tw01/lb1/2024-05-14T10-32-00"}],
    "dm-conflict.value": "overwrite",
}


def start_download(client, app):
    return post_callback(client, app, "dm-action-msg.children", FORGED, via="dm-start-download.n_clicks")


def test_viewer_forging_an_operator_callback_is_refused_and_nothing_runs(app, client, auth):
    auth.login("viewer")
    response = start_download(client, app)
    assert response.status_code == 403
    assert "operator role" in response.get_json()["error"]
    assert app.server.extensions["bagboard.services"].jobs.registry.list() == []


def test_operator_may_run_the_same_callback(app, client, auth):
    auth.login("operator")
    response = start_download(client, app)
    assert response.status_code == 200
    jobs = app.server.extensions["bagboard.services"].jobs.registry.list()
    assert [(job.kind.value, job.target, job.started_by) for job in jobs] == [
        ("download", "acme/north/field-01/tw01/lb1/2024-05-14T10-32-00", "operator")
    ]


def test_forged_coordinates_are_refused_before_any_path_is_built(app, client, auth):
    auth.login("operator")
    values = {**FORGED, "dm-grid.selectedRows": [{"coordinate": "acme/../../etc/passwd/x/y"}]}
    response = post_callback(client, app, "dm-action-msg.children", values, via="dm-start-download.n_clicks")
    assert response.status_code == 400
    assert app.server.extensions["bagboard.services"].jobs.registry.list() == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"output": 5}',
        b'{"output": "nope.children", "inputs": []}',
        b'{"output": "page-content.children", "inputs": "x"}',
    ],
)
def test_malformed_callback_requests_get_400_not_500(client, auth, body):
    auth.login("viewer")
    response = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert response.status_code == 400, response.data


def test_wall_respects_a_custom_routes_prefix(settings):
    from app import create_app

    app = create_app(settings.with_overrides(url_base_pathname="/bagboard/"))
    client = app.server.test_client()
    assert client.get("/bagboard/_dash-layout").status_code == 401
    assert client.post("/bagboard/_dash-update-component", json={}).status_code == 401
    assert client.get("/bagboard/").headers["Location"].startswith("/login?next=/bagboard/")
    assert client.get("/bagboard/assets/10_theme.css").status_code == 200
