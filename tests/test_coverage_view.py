"""The coverage view's callbacks, called as the browser calls them (no browser needed)."""

from __future__ import annotations

import pytest

from pages.coverage.callbacks import BadInput, parse_controls
from tests.conftest import post_callback

COV_SEARCH = '{"type":"filter-url","view":"coverage"}.search'
COV_URL = '{"type":"filter-url","view":"coverage"}'


@pytest.fixture
def seeded(app):
    result = app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"])
    assert result.exit_code == 0, result.output
    return app


def response_outputs(response) -> dict:
    return response.get_json()["response"]


def test_full_selection_renders_kpis_and_table(client, auth, seeded):
    auth.login("viewer")
    runs = seeded.server.extensions["bagboard.services"].inventory.get_runs({"cid": "acme"})
    first = runs.iloc[0]
    search = "?" + "&".join(f"{level}={first[level]}" for level in ("cid", "regionid", "fieldid", "twid", "lbid"))
    response = post_callback(client, seeded, "cov-kpi-bags-value.children", {COV_SEARCH: search})
    assert response.status_code == 200, response.data
    outputs = response_outputs(response)
    lbid_runs = runs[
        (runs["lbid"] == first["lbid"]) & (runs["twid"] == first["twid"]) & (runs["fieldid"] == first["fieldid"])
    ]
    assert outputs["cov-kpi-bags-value"]["children"] == f"{int(lbid_runs['raw_bags'].sum()):,}"
    assert outputs["cov-kpi-timestamps-value"]["children"] == str(len(lbid_runs))
    # a full selection has no per-child breakdown, so that chart is hidden
    assert outputs["chart-coverage-coverage-by-child-box"]["style"] == {"display": "none"}


def test_changing_expected_samples_rewrites_the_url_and_the_gap(client, auth, seeded):
    auth.login("viewer")
    base = post_callback(client, seeded, "cov-kpi-gap-value.children", {COV_SEARCH: "?cid=acme"})
    changed = post_callback(
        client,
        seeded,
        "cov-kpi-gap-value.children",
        {COV_SEARCH: "?cid=acme", "cov-expected.value": 40, "cov-threshold.value": "50"},
        triggered="cov-expected.value",
    )
    before, after = response_outputs(base), response_outputs(changed)
    assert after[COV_URL]["search"] == "?cid=acme&expected=40"
    assert float(after["cov-kpi-gap-value"]["children"].rstrip(" %")) > float(
        before["cov-kpi-gap-value"]["children"].rstrip(" %")
    )


def test_bad_control_values_show_a_message_not_an_error(client, auth, seeded):
    auth.login("viewer")
    response = post_callback(
        client,
        seeded,
        "cov-kpi-gap-value.children",
        {COV_SEARCH: "?cid=acme", "cov-expected.value": 0, "cov-threshold.value": "50"},
        triggered="cov-expected.value",
    )
    assert response.status_code == 200
    assert "between 1 and 1000" in response_outputs(response)["cov-controls-msg"]["children"]


def test_traversal_in_the_url_is_ignored(client, auth, seeded):
    auth.login("viewer")
    response = post_callback(client, seeded, "cov-kpi-bags-value.children", {COV_SEARCH: "?cid=..%2F..&x=1"})
    assert response.status_code == 200
    assert response_outputs(response)[COV_URL]["search"] == "?x=1"  # the invalid level was dropped


def test_empty_inventory_explains_how_to_build_it(client, auth, app):
    auth.login("viewer")
    response = post_callback(client, app, "cov-status.children", {COV_SEARCH: ""})
    assert "No inventory yet" in response.get_data(as_text=True)


def test_clicking_an_under_labelled_row_opens_the_run(client, auth, seeded):
    auth.login("viewer")
    coordinate = "acme/north/field-01/tw01/lb1/2024-05-14T10-32-00"
    rows = [{"coordinate": coordinate}]
    response = post_callback(
        client,
        seeded,
        "url.href",
        {"cov-under-grid.cellClicked": {"rowId": coordinate}, "cov-under-grid.rowData": rows},
        via="cov-under-grid.cellClicked",
    )
    outputs = response_outputs(response)
    assert outputs["url"]["href"] == (
        "/run-analysis?cid=acme&regionid=north&fieldid=field-01&twid=tw01&lbid=lb1&timestamp=2024-05-14T10-32-00"
    )


def test_only_admins_may_start_a_refresh(client, auth, seeded):
    auth.login("operator")
    response = post_callback(client, seeded, "cov-refresh-status.children", {"cov-refresh.n_clicks": 1})
    assert response.status_code == 403
    assert seeded.server.extensions["bagboard.services"].jobs.registry.list() == []


def test_an_admin_refresh_runs_as_a_job_and_re_renders(client, auth, seeded):
    import time

    auth.login("admin")
    started = post_callback(client, seeded, "cov-refresh-status.children", {"cov-refresh.n_clicks": 1})
    job_id = response_outputs(started)["cov-refresh-job"]["data"]
    registry = seeded.server.extensions["bagboard.services"].jobs.registry
    deadline = time.monotonic() + 20
    while registry.get(job_id).is_active and time.monotonic() < deadline:
        time.sleep(0.1)
    polled = post_callback(
        client,
        seeded,
        "cov-refreshed.data",
        {"cov-refresh-tick.n_intervals": 1, "cov-refresh-job.data": job_id},
    )
    outputs = response_outputs(polled)
    assert outputs["cov-refresh-status"]["children"] == "Refreshed: 8 runs."
    assert outputs["cov-refreshed"]["data"] == job_id


def test_an_admin_refreshes_only_the_selection(client, auth, seeded):
    import time

    services = seeded.server.extensions["bagboard.services"]
    run = services.inventory.get_runs({}).iloc[0]
    cid, regionid = str(run["cid"]), str(run["regionid"])
    auth.login("admin")
    values = {"cov-refresh-selection.n_clicks": 1, COV_SEARCH: f"?cid={cid}&regionid={regionid}"}
    started = post_callback(client, seeded, "cov-refresh-status.children", values, "cov-refresh-selection.n_clicks")
    assert response_outputs(started)["cov-refresh-status"]["children"] == f"Refresh of {cid}/{regionid} started…"
    job_id = response_outputs(started)["cov-refresh-job"]["data"]
    job = services.jobs.registry.get(job_id)
    assert job.params == {"prefixes": [f"{cid}/{regionid}"]}
    deadline = time.monotonic() + 30
    while services.jobs.registry.get(job_id).is_active and time.monotonic() < deadline:
        time.sleep(0.1)
    polled = post_callback(
        client, seeded, "cov-refreshed.data", {"cov-refresh-tick.n_intervals": 1, "cov-refresh-job.data": job_id}
    )
    assert response_outputs(polled)["cov-refresh-status"]["children"] == f"Refreshed: {cid}/{regionid}; 8 runs."


@pytest.mark.parametrize(
    ("expected", "threshold", "answer"),
    [(None, None, (17, 50.0)), ("20", "10", (20, 10.0)), ("", "", (17, 50.0))],
)
def test_parse_controls(expected, threshold, answer):
    assert parse_controls(expected, threshold, 17) == answer


@pytest.mark.parametrize(("expected", "threshold"), [("x", 50), (0, 50), (17, 101), (17, "y")])
def test_parse_controls_refuses_bad_values(expected, threshold):
    with pytest.raises(BadInput):
        parse_controls(expected, threshold, 17)


def test_renders_are_reused_until_the_inventory_changes(client, auth, seeded):
    from pages.coverage.callbacks import RENDERS

    auth.login("viewer")
    values = {COV_SEARCH: "?cid=acme"}
    first = response_outputs(post_callback(client, seeded, "cov-kpi-bags-value.children", values))
    hits = RENDERS.hits
    again = response_outputs(post_callback(client, seeded, "cov-kpi-bags-value.children", values))
    assert RENDERS.hits == hits + 1 and again["cov-kpi-bags-value"] == first["cov-kpi-bags-value"]

    services = seeded.server.extensions["bagboard.services"]
    raw_root = services.settings.raw_bucket.removeprefix("file://")
    new_run = f"{raw_root}/acme/north/field-01/tw01/lb1/2030-01-01T00-00-00"
    import pathlib

    pathlib.Path(new_run).mkdir(parents=True)
    (pathlib.Path(new_run) / "new.bag").write_bytes(b"x")
    services.inventory.refresh_inventory()
    after = response_outputs(post_callback(client, seeded, "cov-kpi-bags-value.children", values))
    before_bags = int(first["cov-kpi-bags-value"]["children"].replace(",", ""))
    assert int(after["cov-kpi-bags-value"]["children"].replace(",", "")) == before_bags + 1


@pytest.mark.parametrize("filters", [{}, {"cid": "acme"}], ids=["everything", "one customer"])
def test_every_rendered_output_is_plain_data_so_the_response_encodes_in_one_call(seeded, filters):
    import orjson

    from pages.coverage.callbacks import banner_for, render

    services = seeded.server.extensions["bagboard.services"]
    with seeded.server.app_context():
        outputs = render(services.data_state.get_coverage_report(filters, 17, 50.0))
        banner = banner_for(services.inventory.get_cache_info())
    # Plotly's encoder falls back to a slow walk of the whole response when orjson meets one non-plain value
    # (a component object, a datetime in a figure, …): the coverage view must never hit that path.
    orjson.dumps([*outputs, banner], option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
