"""Callbacks of the temporal coverage view: parse the URL, call one service, render its report."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from pages.coverage.charts import CHARTS
from pages.coverage.layout import EXPECTED_RANGE, KPIS, VIEW_KEY
from src.auth import Role, current_actor, require_role
from src.components.cards import empty_state
from src.components.filter_bar import build_search, filter_url_id, filters_from_query, parse_query
from src.components.plain import plain
from src.components.render_cache import RenderCache
from src.core.extensions import get_services
from src.core.logging import get_logger
from src.csv_safe import to_safe_csv
from src.formatting import format_age
from src.jobs.base import JobKind
from src.models import FILTER_LEVELS, CoverageReport, ProcessingStatus, RunCoordinate
from src.services.coverage import DEFAULT_THRESHOLD_PCT
from src.services.data_state import clean_filters

log = get_logger("bagboard.coverage")
HIDDEN, SHOWN = {"display": "none"}, {}
RUN_VIEW_PATH = "/run-analysis"
BREAKDOWN_CHART = "chart-coverage-coverage-by-child"
FILTER_URL_ID = filter_url_id(VIEW_KEY)
# KPI values, banner, status, a figure and a box style per chart, grid rows, row count, findings.
RENDER_OUTPUTS = len(KPIS) + 2 + 2 * len(CHARTS) + 3
RENDERS = RenderCache(size=256)


class BadInput(ValueError):
    """A control holds a value the view cannot use; the message is for the user."""


def parse_controls(expected: Any, threshold: Any, default_expected: int) -> tuple[int, float]:
    """Return (expected samples per bag, threshold %) or raise BadInput with a one-line message."""
    try:
        expected_value = default_expected if expected in (None, "") else int(float(expected))
    except (TypeError, ValueError):
        raise BadInput("Expected samples per bag must be a whole number.") from None
    if not EXPECTED_RANGE[0] <= expected_value <= EXPECTED_RANGE[1]:
        raise BadInput(f"Expected samples per bag must be between {EXPECTED_RANGE[0]} and {EXPECTED_RANGE[1]}.")
    try:
        threshold_value = DEFAULT_THRESHOLD_PCT if threshold in (None, "") else float(threshold)
    except (TypeError, ValueError):
        raise BadInput("The threshold must be a number of percent.") from None
    if not 0 <= threshold_value <= 100:
        raise BadInput("The threshold must be between 0 and 100 %.")
    return expected_value, threshold_value


def kpi_values(report: CoverageReport) -> list[str]:
    """Return the six KPI figures in the order of KPIS."""
    stats = report.statistics
    return [
        f"{stats.total_timestamps:,}",
        f"{stats.total_raw_bags:,}",
        f"{stats.total_ml_samples:,}",
        f"{stats.overall_coverage_pct:.1f} %",
        f"{stats.average_gap_pct:.1f} %",
        f"{stats.under_labeled_count:,}",
    ]


def under_rows(report: CoverageReport) -> list[dict[str, Any]]:
    """Return the grid rows for the under-labelled runs."""
    stats = report.statistics
    return [
        {
            "coordinate": coordinate,
            "timestamp": timestamp,
            "gap_pct": gap,
            "raw_bags": bags,
            "ml_samples": samples,
            "expected": bags * report.expected_samples_per_bag,
        }
        for coordinate, (timestamp, gap, bags, samples) in zip(
            stats.under_labeled_coordinates, stats.under_labeled_timestamps, strict=True
        )
    ]


def banner(report: CoverageReport) -> Any:
    """Warn when the inventory is stale, else say how old it is."""
    return banner_for(
        {
            "stale_since": report.stale_since,
            "last_error": report.stale_reason,
            "available": report.inventory_available,
            "age_seconds": report.inventory_age_seconds,
        }
    )


def banner_for(info: dict[str, Any]) -> Any:
    """Warn when the inventory is stale (from its cache info), else say how old it is (as plain data)."""
    return plain(_banner(info))


def _banner(info: dict[str, Any]) -> Any:
    stale_since, reason = info.get("stale_since"), info.get("last_error") or info.get("stale_reason")
    if stale_since:
        return dbc.Alert(
            [
                html.B("Inventory is stale "),
                f"since {stale_since[:16].replace('T', ' ')} UTC: the last refresh failed, "
                "showing the last good snapshot. ",
                html.Span(reason or "", className="small"),
            ],
            color="warning",
            id="cov-stale-banner",
            className="py-2",
        )
    if info.get("available"):
        return html.Div(
            f"Inventory updated {format_age(info.get('age_seconds'))}.",
            className="small text-muted mb-2",
            id="cov-age",
        )
    return None


def findings(report: CoverageReport) -> Any:
    """List runs that have ML samples but no raw bags (a data-quality finding, not a gap)."""
    orphans = report.statistics.samples_without_bags
    if not orphans:
        return None
    return dbc.Alert(
        [
            html.B(f"{len(orphans)} run(s) have ML samples but no raw bags. "),
            "They are left out of the gap figures: ",
            html.Ul(
                [html.Li(f"{coordinate} — {samples} samples") for coordinate, samples in orphans[:20]],
                className="mb-0 small",
            ),
        ],
        color="light",
        id="cov-orphans",
    )


def status_message(report: CoverageReport) -> Any:
    """Explain an empty view: no inventory yet, or nothing under the filter."""
    if not report.inventory_available:
        return empty_state(
            "No inventory yet.",
            "An admin can build it with the Refresh inventory button or 'flask --app app inventory refresh'.",
            element_id="cov-empty",
        )
    if not report.temporal.timestamps:
        return empty_state(
            "Nothing matches this filter.", "Clear a filter level to widen the selection.", element_id="cov-empty"
        )
    unplaced = report.temporal.unplaced or sum(t is None for t in report.temporal.parsed_times)
    if unplaced:
        return html.Div(
            f"{unplaced} timestamp(s) have names that are not dates; they are counted but not placed on the time axes.",
            className="small text-muted mb-2",
            id="cov-unplaced",
        )
    return None


def render(report: CoverageReport) -> tuple:
    """Turn a report into the values of every output of the render callback."""
    figures, styles = [], []
    has_data = bool(report.temporal.timestamps)
    for chart in CHARTS:
        figure = chart.module.build(report) if has_data else None
        figures.append(figure if figure is not None else {})
        styles.append(SHOWN if figure is not None else HIDDEN)
    rows = under_rows(report)
    total = report.statistics.under_labeled_count
    count = f"{total:,} above {report.threshold_pct:g} %" + (
        f" (the worst {len(rows):,} shown; Export CSV has all)" if total > len(rows) else ""
    )
    return (
        *kpi_values(report),
        banner(report),
        plain(status_message(report)),
        *figures,
        *styles,
        rows,
        count,
        plain(findings(report)),
    )


def register_callbacks(app: Dash) -> None:
    """Register the coverage view's callbacks."""
    chart_outputs = [Output(chart.element_id, "figure") for chart in CHARTS]
    box_outputs = [Output(f"{chart.element_id}-box", "style") for chart in CHARTS]

    @app.callback(
        Output(FILTER_URL_ID, "search", allow_duplicate=True),
        Output("cov-expected", "value"),
        Output("cov-threshold", "value"),
        Output("cov-controls-msg", "children"),
        *[Output(f"{card_id}-value", "children") for card_id, _ in KPIS],
        Output("cov-banner", "children"),
        Output("cov-status", "children"),
        *chart_outputs,
        *box_outputs,
        Output("cov-under-grid", "rowData"),
        Output("cov-under-count", "children"),
        Output("cov-findings", "children"),
        Input(FILTER_URL_ID, "search"),
        Input("cov-expected", "value"),
        Input("cov-threshold", "value"),
        Input("cov-refreshed", "data"),
        prevent_initial_call="initial_duplicate",
    )
    def update_coverage(search: str | None, expected: Any, threshold: Any, _refreshed: Any) -> tuple:
        query = parse_query(search)
        services = get_services()
        from_controls = ctx.triggered_id in ("cov-expected", "cov-threshold") and len(ctx.triggered_prop_ids) == 1
        if not from_controls:
            expected, threshold = query.get("expected"), query.get("threshold")
        try:
            expected_value, threshold_value = parse_controls(
                expected, threshold, services.settings.expected_samples_per_bag
            )
            filters = clean_filters(filters_from_query(query))
        except ValueError as exc:  # BadInput from the controls, or a service refusal
            log.info("coverage_input_refused", error=str(exc))
            return (no_update, no_update, no_update, str(exc), *[no_update] * RENDER_OUTPUTS)
        # Many people look at the same few selections: reuse a render while the inventory is unchanged.
        key = (id(services), services.inventory.version(), tuple(filters.items()), expected_value, threshold_value)
        outputs = RENDERS.get_or_build(
            key, lambda: render(services.data_state.get_coverage_report(filters, expected_value, threshold_value))
        )
        # The banner carries the inventory's age and staleness, which change without a new version.
        outputs = (
            *outputs[: len(KPIS)],
            banner_for(services.inventory.get_cache_info()),
            *outputs[len(KPIS) + 1 :],
        )
        extra = {key: value for key, value in query.items() if key not in (*FILTER_LEVELS, "expected", "threshold")}
        if expected_value != services.settings.expected_samples_per_bag:
            extra["expected"] = str(expected_value)
        if threshold_value != DEFAULT_THRESHOLD_PCT:
            extra["threshold"] = f"{threshold_value:g}"
        new_search = build_search(filters, extra)
        # Never write back into a control the user is typing in; only a URL change sets the controls.
        return (
            new_search if new_search != (search or "") else no_update,
            no_update if from_controls else expected_value,
            no_update if from_controls else f"{threshold_value:g}",
            "",
            *outputs,
        )

    @app.callback(
        Output("url", "href", allow_duplicate=True),
        Input("cov-under-grid", "cellClicked"),
        State("cov-under-grid", "rowData"),
        prevent_initial_call=True,
    )
    def open_run(cell: dict | None, rows: list[dict] | None) -> str:
        if not cell or not isinstance(cell, dict) or not isinstance(rows, list):  # other shapes are forged
            raise PreventUpdate
        # Rows are keyed by coordinate (getRowId), so sorting or filtering the grid cannot pick the wrong run.
        coordinate = cell.get("rowId")
        if not any(isinstance(row, dict) and row.get("coordinate") == coordinate for row in rows):
            raise PreventUpdate
        return run_link(coordinate)

    @app.callback(
        Output("url", "href", allow_duplicate=True),
        Output(FILTER_URL_ID, "search", allow_duplicate=True),
        *[Input(chart.element_id, "clickData") for chart in CHARTS],
        State(FILTER_URL_ID, "search"),
        prevent_initial_call=True,
    )
    def follow_chart_click(*args: Any) -> tuple[Any, Any]:
        *clicks, search = args
        point = next((c["points"][0] for c in clicks if isinstance(c, dict) and _points(c)), None)
        if not isinstance(point, dict) or "customdata" not in point:
            raise PreventUpdate
        filters = filters_from_query(parse_query(search))
        if ctx.triggered_id == BREAKDOWN_CHART and len(filters) < len(FILTER_LEVELS):
            # Drill into the clicked child: the next filter level takes its value.
            return (
                no_update,
                no_update,
                build_search({**filters, FILTER_LEVELS[len(filters)]: str(point["customdata"])}),
            )
        data = point["customdata"]
        timestamp = str(data[0] if isinstance(data, list) and data else data)
        # A bucketed series (one point per day, say) names a period, not a run: nothing to open.
        if len(filters) == len(FILTER_LEVELS) and timestamp in get_services().data_state.get_available_timestamps(
            filters
        ):
            return run_link(RunCoordinate.from_filters(filters, timestamp).to_path_str()), no_update
        raise PreventUpdate

    @app.callback(
        Output("cov-download", "data"),
        Input("cov-export", "n_clicks"),
        State(FILTER_URL_ID, "search"),
        State("cov-expected", "value"),
        State("cov-threshold", "value"),
        prevent_initial_call=True,
    )
    def export_csv(_clicks: int | None, search: str | None, expected: Any, threshold: Any) -> dict:
        services = get_services()
        try:
            expected_value, threshold_value = parse_controls(
                expected, threshold, services.settings.expected_samples_per_bag
            )
        except BadInput:
            raise PreventUpdate from None
        filters = filters_from_query(parse_query(search))
        # Every under-labelled run, not just the rows on screen.
        stats = services.data_state.get_coverage_statistics(filters, expected_value, threshold_value)
        frame = pd.DataFrame(stats.under_labeled_timestamps, columns=["timestamp", "gap_pct", "raw_bags", "ml_samples"])
        frame.insert(0, "coordinate", stats.under_labeled_coordinates)
        frame["expected_samples"] = frame["raw_bags"] * expected_value
        name = "under-labelled-" + ("-".join(filters.values()) or "all") + ".csv"
        # Run names come from the buckets: a cell like "=HYPERLINK(...)" must stay text in a spreadsheet.
        return dcc.send_string(to_safe_csv(frame), name, type="text/csv")

    @app.callback(
        Output("cov-refresh-status", "children"),
        Output("cov-refresh-tick", "disabled"),
        Output("cov-refresh-job", "data"),
        Input("cov-refresh", "n_clicks"),
        Input("cov-refresh-selection", "n_clicks"),
        State(FILTER_URL_ID, "search"),
        prevent_initial_call=True,
    )
    @require_role(Role.ADMIN)
    def start_refresh(_clicks: int | None, _selection: int | None, search: str | None) -> tuple[str, bool, str]:
        params: dict[str, Any] = {}
        if ctx.triggered_id == "cov-refresh-selection":
            try:
                prefix = "/".join(clean_filters(filters_from_query(parse_query(search))).values())
            except ValueError as exc:
                return f"Cannot refresh this selection: {exc}", True, no_update
            if prefix:
                params["prefixes"] = [prefix]
        job = get_services().jobs.submit(
            JobKind.INVENTORY_REFRESH, "inventory", params, current_actor(), required_role=Role.ADMIN
        )
        what = f" of {params['prefixes'][0]}" if params else ""
        return f"Refresh{what} started…", False, job.id

    @app.callback(
        Output("cov-refresh-status", "children", allow_duplicate=True),
        Output("cov-refresh-tick", "disabled", allow_duplicate=True),
        Output("cov-refreshed", "data"),
        Input("cov-refresh-tick", "n_intervals"),
        State("cov-refresh-job", "data"),
        prevent_initial_call=True,
    )
    def poll_refresh(_ticks: int | None, job_id: str | None) -> tuple[str, bool, Any]:
        job = get_services().jobs.registry.get(job_id) if job_id and isinstance(job_id, str) else None
        if job is None:
            return "", True, no_update
        if job.is_active:
            return f"Refreshing: {job.message or 'starting'}", False, no_update
        if job.status is ProcessingStatus.COMPLETE:
            # A new value in the store re-renders the view from the new inventory.
            prefixes = job.result.get("prefixes") or []
            what = f" {', '.join(prefixes)};" if prefixes else ""
            return f"Refreshed:{what} {job.result.get('runs', 0):,} runs.", True, job.id
        return f"Refresh failed: {job.error}", True, no_update


def _points(click: dict) -> bool:
    """Tell whether a chart's clickData holds a non-empty list of points."""
    return isinstance(click.get("points"), list) and bool(click["points"])


def run_link(coordinate: str) -> str:
    """Return the run analysis link (path and query) for a coordinate path."""
    coord = RunCoordinate.from_path(coordinate)
    return RUN_VIEW_PATH + build_search(coord.filters(), {"timestamp": coord.timestamp})
