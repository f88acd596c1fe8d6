"""Callbacks of the fleet view: parse the URL and controls, call the fleet or batch service, render its model."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from pages.fleet.charts import CHARTS
from pages.fleet.layout import KPIS, VIEW_KEY
from src.auth import Role, current_actor, require_role
from src.components.cards import empty_state
from src.components.filter_bar import build_search, filter_url_id, filters_from_query, parse_query
from src.components.plain import plain
from src.components.render_cache import RenderCache
from src.core.extensions import get_services
from src.core.logging import get_logger
from src.models import FILTER_LEVELS, HIERARCHY_LEVELS
from src.models.fleet import KPI_COLUMNS, BatchRecord, BatchRunState, FleetReport
from src.services.batch import BatchError
from src.services.data_state import clean_filters
from src.services.fleet_stats import DEFAULT_THRESHOLD

log = get_logger("bagboard.fleet")
HIDDEN, SHOWN = {"display": "none"}, {}
RUN_VIEW_PATH = "/run-analysis"
COMPARE_PATH = "/compare"
FILTER_URL_ID = filter_url_id(VIEW_KEY)
RENDERS = RenderCache(size=128)
MAX_OUTLIERS = 25
MAX_BATCH_ROWS = 200
# Coverage note, KPI values, status, a figure and a box style per chart, the per-child table, the outliers.
RENDER_OUTPUTS = 1 + len(KPIS) + 1 + 2 * len(CHARTS) + 2
LABELS = {name: (label, unit) for name, label, unit in KPI_COLUMNS}


def run_link(coordinate: str) -> str:
    """Return the run view's link for a coordinate path (six parts from the fleet table; the run view checks them)."""
    return RUN_VIEW_PATH + "?" + urlencode(list(zip(HIERARCHY_LEVELS, coordinate.split("/"), strict=False)))


def compare_link(coordinate: str, other: str | None = None) -> str:
    """Return the comparison's link: the run against another, or against its lbid's median."""
    return COMPARE_PATH + "?" + urlencode({"a": coordinate, **({"b": other} if other else {"vs": "lbid"})})


def parse_threshold(value: Any) -> float:
    """Return the outlier threshold, or raise ValueError with a one-line message."""
    try:
        return DEFAULT_THRESHOLD if value in (None, "") else float(value)
    except (TypeError, ValueError):
        raise ValueError("The outlier threshold must be a number.") from None


def fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    """Format a KPI (— when missing)."""
    return "—" if value is None else f"{value:,.{digits}f} {unit}".rstrip()


def kpi_values(report: FleetReport) -> list[str]:
    """Return the KPI card figures in the order of KPIS."""
    overall = report.overall
    return [
        f"{report.analysed_runs:,} of {report.total_runs:,}",
        fmt(overall.get("mean_fps"), "Hz"),
        fmt(overall.get("latency_p95_ms"), "ms"),
        fmt(overall.get("drops_per_min"), "/min"),
        fmt(overall.get("tracks_per_min"), "/min"),
        fmt(overall.get("mean_track_lifetime_s"), "s"),
    ]


def coverage_note(report: FleetReport) -> Any:
    """Say how much of the selection the figures cover, so nobody mistakes a part for the whole."""
    if report.total_runs and report.not_analysed:
        share = 100 * report.analysed_runs / report.total_runs
        return dbc.Alert(
            [
                html.B(f"{report.analysed_runs:,} of {report.total_runs:,} runs analysed ({share:.0f} %). "),
                f"The figures cover those only; {report.not_analysed:,} run(s) with bags are not analysed yet.",
            ],
            color="warning",
            className="py-2 mb-0",
            id="fl-partial",
        )
    if report.analysed_runs:
        return html.Div(f"All {report.analysed_runs:,} runs analysed.", className="small text-muted", id="fl-complete")
    return None


def children_table(report: FleetReport) -> Any:
    """Return the per-child roll-up as a table."""
    frame = report.by_child
    if frame.empty:
        return html.P("Nothing analysed here yet.", className="small text-muted mb-0")
    header = html.Thead(html.Tr([html.Th(report.level), html.Th("runs"), *[html.Th(LABELS[n][0]) for n in LABELS]]))
    rows = [
        html.Tr(
            [
                html.Td(str(child)),
                html.Td(int(row["runs"])),
                *[html.Td(fmt(None if pd.isna(row[name]) else float(row[name]), "", 2)) for name in LABELS],
            ]
        )
        for child, row in frame.iterrows()
    ]
    return dbc.Table([header, html.Tbody(rows)], size="sm", striped=True, responsive=True, id="fl-children-table")


def outlier_list(report: FleetReport) -> Any:
    """List outlier runs, each linked to its run view and to a comparison with its lbid's median."""
    if not report.outliers:
        return html.P(
            f"No outliers above |z| {report.threshold:g}.", className="small text-muted mb-0", id="fl-no-outliers"
        )
    items = []
    for index, outlier in enumerate(report.outliers[:MAX_OUTLIERS]):
        label, unit = LABELS[outlier.metric]
        items.append(
            html.Li(
                [
                    dcc.Link(
                        outlier.coordinate,
                        href=run_link(outlier.coordinate),
                        className="fl-outlier-link",
                        id=f"fl-outlier-{index}",
                    ),
                    html.Span(
                        f" — {label} {outlier.value:,.2f} {unit} vs median {outlier.median:,.2f} in {outlier.group}"
                        f" (z {outlier.z:+.1f}) · ",
                        className="small",
                    ),
                    dcc.Link("compare", href=compare_link(outlier.coordinate), className="small"),
                ]
            )
        )
    more = len(report.outliers) - len(items)
    tail = [html.P(f"…and {more} more (Export CSV has every run).", className="small text-muted")] if more > 0 else []
    return html.Div([html.Ul(items, className="mb-1", id="fl-outlier-list"), *tail])


def status_message(report: FleetReport) -> Any:
    """Explain an empty view."""
    if report.analysed_runs:
        if report.unplaced:
            return html.Div(
                f"{report.unplaced} run(s) have no usable time and are left out of the over-time chart.",
                className="small text-muted mb-2",
            )
        return None
    return empty_state(
        "No analysed run under this filter.",
        "Operators can queue download → extract → analyse for every run here with 'Analyse the rest'.",
        element_id="fl-empty",
    )


def render(report: FleetReport) -> tuple:
    """Turn a report into the values of every output of the render callback."""
    figures, styles = [], []
    for chart in CHARTS:
        figure = chart.module.build(report) if report.analysed_runs else None
        figures.append(figure if figure is not None else {})
        styles.append(SHOWN if figure is not None else HIDDEN)
    return (
        plain(coverage_note(report)),
        *kpi_values(report),
        plain(status_message(report)),
        *figures,
        *styles,
        plain(children_table(report)),
        plain(outlier_list(report)),
    )


def batch_view(record: BatchRecord, may_operate: bool) -> Any:
    """Return one batch: its progress bar, counts, cancel button and its runs' states."""
    counts = record.counts()
    active = record.status in ("pending", "in_progress")
    runs = sorted(record.runs, key=lambda run: (run.state.is_final, run.state is BatchRunState.ANALYSED))
    rows = [
        html.Tr(
            [
                html.Td(dcc.Link(run.coordinate, href=run_link(run.coordinate)), className="small"),
                html.Td(run.state.value, className=f"small fl-run-{run.state.value}"),
                html.Td(run.error, className="small text-danger"),
            ]
        )
        for run in runs[:MAX_BATCH_ROWS]
    ]
    summary = ", ".join(f"{value} {state}" for state, value in counts.items() if value)
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        html.B(f"Batch of {len(record.runs):,} runs", className="me-2"),
                        dbc.Badge(record.status.replace("_", " "), id="fl-batch-status", className="me-2"),
                        html.Span(f"by {record.created_by}", className="small text-muted"),
                        dbc.Button(
                            "Cancel batch",
                            id="fl-batch-cancel",
                            size="sm",
                            color="link",
                            className="ms-auto p-0",
                            disabled=not may_operate,
                        )
                        if active
                        else None,
                    ],
                    className="d-flex align-items-center",
                ),
                dbc.Progress(
                    value=record.percent,
                    label=f"{record.finished} / {len(record.runs)}",
                    className="my-2",
                    style={"height": "16px"},
                    id="fl-batch-progress",
                ),
                html.Div(summary, className="small text-muted mb-2", id="fl-batch-counts"),
                html.Details(
                    [
                        html.Summary("Runs", className="small"),
                        dbc.Table(html.Tbody(rows), size="sm", className="mb-0", id="fl-batch-runs"),
                    ],
                    open=len(record.runs) <= 20,
                ),
            ]
        ),
        id="fl-batch-card",
    )


def register_callbacks(app: Dash) -> None:
    """Register the fleet view's callbacks."""
    chart_outputs = [Output(chart.element_id, "figure") for chart in CHARTS]
    box_outputs = [Output(f"{chart.element_id}-box", "style") for chart in CHARTS]

    @app.callback(
        Output("fl-controls-msg", "children"),
        Output("fl-coverage", "children"),
        *[Output(f"{card_id}-value", "children") for card_id, _ in KPIS],
        Output("fl-status", "children"),
        *chart_outputs,
        *box_outputs,
        Output("fl-children", "children"),
        Output("fl-outliers", "children"),
        Input(FILTER_URL_ID, "search"),
        Input("fl-period", "value"),
        Input("fl-threshold", "value"),
        Input("fl-refresh", "data"),
    )
    def update_fleet(search: str | None, period: Any, threshold: Any, _refresh: Any) -> tuple:
        services = get_services()
        try:
            filters = clean_filters(filters_from_query(parse_query(search)))
            threshold_value = parse_threshold(threshold)
            period_value = str(period or "day")
            key = (id(services), services.fleet.version(), tuple(filters.items()), period_value, threshold_value)
            outputs = RENDERS.get_or_build(
                key, lambda: render(services.fleet.get_report(filters, period_value, threshold_value))
            )
        except ValueError as exc:  # FleetInputError from the service, or a control the view cannot use
            log.info("fleet_input_refused", error=str(exc))
            return (str(exc), *[no_update] * RENDER_OUTPUTS)
        return ("", *outputs)

    @app.callback(
        Output(FILTER_URL_ID, "search", allow_duplicate=True),
        *[Input(chart.element_id, "clickData") for chart in CHARTS[:2]],
        State(FILTER_URL_ID, "search"),
        prevent_initial_call=True,
    )
    def drill_down(*args: Any) -> str:
        *clicks, search = args
        point = next((c["points"][0] for c in clicks if isinstance(c, dict) and c.get("points")), None)
        filters = filters_from_query(parse_query(search))
        if not isinstance(point, dict) or "customdata" not in point or len(filters) >= len(FILTER_LEVELS):
            raise PreventUpdate
        query = parse_query(search)
        extra = {key: value for key, value in query.items() if key not in FILTER_LEVELS}
        return build_search({**filters, FILTER_LEVELS[len(filters)]: str(point["customdata"])}, extra)

    @app.callback(
        Output("fl-download", "data"),
        Input("fl-export", "n_clicks"),
        State(FILTER_URL_ID, "search"),
        prevent_initial_call=True,
    )
    def export_csv(_clicks: int | None, search: str | None) -> dict:
        filters = clean_filters(filters_from_query(parse_query(search)))
        name = "fleet-" + ("-".join(filters.values()) or "all") + ".csv"
        # Run names come from the buckets: a cell like "=HYPERLINK(...)" must stay text in a spreadsheet.
        return dcc.send_string(get_services().fleet.export_csv(filters), name, type="text/csv")

    @app.callback(
        Output("fl-batch-id", "data"),
        Output("fl-batch-tick", "disabled"),
        Output("fl-batch-msg", "children"),
        Input("fl-start-batch", "n_clicks"),
        State(FILTER_URL_ID, "search"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_batch(_clicks: int | None, search: str | None) -> tuple:
        filters = clean_filters(filters_from_query(parse_query(search)))
        try:
            record = get_services().batches.start(current_actor(), filters)
        except BatchError as exc:
            return no_update, no_update, html.Span(str(exc), className="text-muted", id="fl-batch-refused")
        return record.batch_id, False, f"Queued {len(record.runs):,} run(s)."

    @app.callback(
        Output("fl-batch", "children"),
        Output("fl-batch-tick", "disabled", allow_duplicate=True),
        Output("fl-refresh", "data"),
        Input("fl-batch-tick", "n_intervals"),
        Input("fl-batch-id", "data"),
        State("fl-refresh", "data"),
        prevent_initial_call="initial_duplicate",
    )
    def follow_batch(_ticks: int | None, batch_id: Any, refreshed: Any) -> tuple:
        if not batch_id:
            raise PreventUpdate
        try:
            record = get_services().batches.status(str(batch_id))
        except BatchError as exc:
            return html.Div(str(exc), className="small text-danger"), True, no_update
        actor = current_actor()
        done = record.status not in ("pending", "in_progress")
        # A finished run changes the figures: a new value in the store re-renders the report.
        marker = (record.batch_id, record.finished)
        return (
            plain(batch_view(record, bool(actor and actor.can(Role.OPERATOR)))),
            done,
            list(marker) if list(marker) != refreshed else no_update,
        )

    @app.callback(
        Output("fl-batch-msg", "children", allow_duplicate=True),
        Input("fl-batch-cancel", "n_clicks"),
        State("fl-batch-id", "data"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def cancel_batch(clicks: int | None, batch_id: Any) -> str:
        if not clicks or not batch_id:
            raise PreventUpdate
        try:
            accepted = get_services().batches.cancel(str(batch_id), current_actor())
        except BatchError as exc:
            return str(exc)
        return "Cancel requested: running steps stop at their next file." if accepted else "That batch had ended."
