"""Callbacks of the download manager: run states, plans, jobs. Each parses inputs and calls one service."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from pages.download_manager.layout import KPIS, VIEW_KEY
from src.auth import Role, current_actor, require_role
from src.components.cards import empty_state
from src.components.filter_bar import build_search, filter_url_id, filters_from_query, parse_query
from src.components.plain import plain
from src.components.render_cache import RenderCache
from src.core.extensions import get_services
from src.core.logging import get_logger
from src.formatting import format_bytes
from src.jobs.base import Job, JobError, JobKind
from src.models import ProcessingStatus, RunCoordinate
from src.services.batch import BatchError
from src.services.local_state import ExportTrackingError
from src.storage import StorageError

log = get_logger("bagboard.downloads")
# The KPIs count every run; the table sends its first rows, each ~0.3 KB of response, re-sent whenever a job
# finishes. 1,000 rows (~330 KB) are 20 pages of 50, more than anyone pages through; a filter level narrows the
# rest. 2,000 made the unfiltered refresh 670 KB for no one's benefit.
MAX_GRID_ROWS = 1000
JOB_ROWS = RenderCache(size=512)  # rendered job rows, per worker
MAX_PLANNED_RUNS = 200  # a plan lists files; beyond this many runs the table stops being readable
STATUS_COLOURS = {
    ProcessingStatus.PENDING: "secondary",
    ProcessingStatus.IN_PROGRESS: "primary",
    ProcessingStatus.COMPLETE: "success",
    ProcessingStatus.CACHED: "success",
    ProcessingStatus.FAILED: "danger",
    ProcessingStatus.CANCELLED: "warning",
}


def selected_coordinates(rows: list[dict] | None) -> list[RunCoordinate]:
    """Parse the selected grid rows into validated coordinates (forged values raise ValueError)."""
    if rows is not None and not isinstance(rows, list):
        raise ValueError("the selected rows must be a list")
    return [
        RunCoordinate.from_path(str(row.get("coordinate", "") if isinstance(row, dict) else "")) for row in rows or []
    ]


def overview_rows(rows: list[dict]) -> list[dict]:
    """Add display columns to the service's overview rows."""
    return [
        {
            **row,
            "cloud_size": format_bytes(row["cloud_bytes"]),
            "extracted": "yes" if row["extracted"] else "—",
            "analyzed": "yes" if row["analyzed"] else "—",
        }
        for row in rows
    ]


def plan_table(rows: list[tuple[str, dict[str, int], int, int]]) -> dbc.Table:
    """Return one line per planned run: file actions and bytes to transfer."""
    header = html.Thead(html.Tr([html.Th(h) for h in ("Run", "Download", "Overwrite", "Skip", "Conflict", "Bytes")]))
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(name, className="small"),
                    *[html.Td(counts.get(action, 0)) for action in ("download", "overwrite", "skip", "conflict")],
                    html.Td(f"{format_bytes(transfer)} of {format_bytes(total)}"),
                ]
            )
            for name, counts, transfer, total in rows
        ]
    )
    return dbc.Table([header, body], size="sm", striped=True, className="bb-plan-table mb-0", id="dm-plan-rows")


def rendered_job_row(job: Job, may_operate: bool) -> dict[str, Any]:
    """Return a job's row as plain data, reusing the render while nothing it shows has changed."""
    # Every open download manager polls the list every few seconds and most jobs have long finished: rebuilding
    # their components on each tick was most of the request.
    shown = (job.status, job.percent, job.files_done, job.bytes_done, job.message, job.error)
    key = (job.id, job.kind, job.target, job.started_by, job.files_total, job.bytes_total, *shown, may_operate)
    return JOB_ROWS.get_or_build(key, lambda: plain(job_row(job, may_operate)))


def job_row(job: Job, may_operate: bool) -> html.Div:
    """Return one job with its progress bar, message, error and a cancel button while active."""
    colour = STATUS_COLOURS.get(job.status, "secondary")
    detail = f"{job.files_done}/{job.files_total} files" if job.files_total else ""
    if job.bytes_total:
        detail += f" · {format_bytes(job.bytes_done)} of {format_bytes(job.bytes_total)}"
    return html.Div(
        [
            html.Div(
                [
                    dbc.Badge(job.status.value.replace("_", " "), color=colour, className="me-2"),
                    html.B(job.kind.value, className="me-2"),
                    dcc.Link(job.target, href=f"/fleet?batch={job.params.get('batch_id', '')}", className="small me-2")
                    if job.kind is JobKind.BATCH
                    else html.Span(job.target, className="small me-2"),
                    html.Span(f"by {job.started_by}", className="small text-muted"),
                    dbc.Button(
                        "Cancel",
                        id={"type": "dm-cancel", "job": job.id},
                        size="sm",
                        color="link",
                        className="ms-auto p-0",
                        disabled=not may_operate,
                    )
                    if job.is_active
                    else None,
                ],
                className="d-flex align-items-center",
            ),
            dbc.Progress(
                value=job.percent,
                label=f"{job.percent:.0f} %",
                color=colour,
                className="my-1",
                style={"height": "14px"},
                id={"type": "dm-progress", "job": job.id},
            ),
            html.Div(" · ".join(p for p in (detail, job.message) if p), className="small text-muted"),
            html.Div(job.error, className="small text-danger") if job.error else None,
        ],
        className="bb-job border-bottom py-2",
        **{"data-job": job.id},
    )


def register_callbacks(app: Dash) -> None:
    """Register the download manager's callbacks."""
    url = filter_url_id(VIEW_KEY)

    @app.callback(
        Output("dm-grid", "rowData"),
        *[Output(f"{card_id}-value", "children") for card_id, _ in KPIS[:-1]],
        Output("dm-status", "children"),
        Input(url, "search"),
        Input("dm-finished-jobs", "data"),
    )
    def show_overview(search: str | None, _finished: Any) -> tuple:
        services = get_services()
        filters = filters_from_query(parse_query(search))
        if not services.inventory.get_cache_info()["available"]:
            hint = (
                "An admin can build the inventory from the coverage view or with 'flask --app app inventory refresh'."
            )
            return [], *["—"] * (len(KPIS) - 1), empty_state("No inventory yet.", hint)
        overview = services.data_state.get_state_summary(filters, limit=MAX_GRID_ROWS)
        counts = (
            overview.total_runs,
            overview.with_cloud_bags,
            overview.downloaded,
            overview.extracted,
            overview.analyzed,
        )
        kpis = [f"{count:,}" for count in counts]
        status = None
        if not overview.total_runs:
            status = empty_state("No runs match this filter.", "Clear a filter level to widen it.")
        elif overview.truncated:
            status = dbc.Alert(
                f"Showing the first {len(overview.rows):,} of {overview.total_runs:,} runs: "
                "narrow the filter to see the rest.",
                color="info",
                className="py-2",
                id="dm-truncated",
            )
        # Plain data throughout lets Dash encode the rows in one orjson call instead of a Python walk.
        return overview_rows(overview.rows), *kpis, plain(status)

    @app.callback(Output("dm-selection", "children"), Input("dm-grid", "selectedRows"))
    def show_selection(rows: list[dict] | None) -> str:
        return f"{len(rows)} selected" if rows and isinstance(rows, list) else "Tick runs to plan or download them."

    @app.callback(
        Output("dm-download-plan", "children"),
        Input("dm-plan-download", "n_clicks"),
        State("dm-grid", "selectedRows"),
        State("dm-conflict", "value"),
        prevent_initial_call=True,
    )
    def plan_download(_clicks: int | None, rows: list[dict] | None, policy: str) -> Any:
        try:
            coords = selected_coordinates(rows)
        except ValueError as exc:
            return dbc.Alert(str(exc), color="danger")
        if not coords:
            return dbc.Alert("Select runs in the table first.", color="info", className="py-2")
        operations = get_services().operations
        planned = []
        try:
            for coord in coords[:MAX_PLANNED_RUNS]:
                plan = operations.plan_raw_download(coord, policy)
                planned.append((coord.to_path_str(), plan.counts, plan.bytes_to_transfer, plan.total_bytes))
        except (JobError, StorageError) as exc:  # the services' one-line refusals (policy, bucket, disk)
            return dbc.Alert(str(exc), color="danger", className="py-2")
        note = f" (first {MAX_PLANNED_RUNS} of {len(coords)})" if len(coords) > MAX_PLANNED_RUNS else ""
        return html.Div(
            [html.Div(f"Plan for {len(coords)} run(s){note}:", className="small mb-1"), plan_table(planned)]
        )

    @app.callback(
        Output("dm-action-msg", "children"),
        Output("dm-tabs", "active_tab", allow_duplicate=True),
        Input("dm-start-download", "n_clicks"),
        State("dm-grid", "selectedRows"),
        State("dm-conflict", "value"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_download(_clicks: int | None, rows: list[dict] | None, policy: str) -> tuple[Any, Any]:
        coords = selected_coordinates(rows)
        if not coords:
            return "Select runs in the table first.", no_update
        if policy not in ("skip", "overwrite"):
            return "Choose skip or overwrite.", no_update
        runner, actor = get_services().jobs, current_actor()
        jobs = [
            runner.submit(JobKind.DOWNLOAD, c.to_path_str(), {"coordinate": c.to_path_str(), "conflict": policy}, actor)
            for c in coords
        ]
        fresh = sum(job.started_by == actor.name and job.status is ProcessingStatus.PENDING for job in jobs)
        return (
            f"Started {len(jobs)} download job(s); {len(jobs) - fresh} were already running or queued.",
            "dm-tab-jobs",
        )

    @app.callback(
        Output("dm-batch-msg", "children"),
        Input("dm-start-batch", "n_clicks"),
        State("dm-grid", "selectedRows"),
        State(url, "search"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_batch(_clicks: int | None, rows: list[dict] | None, search: str | None) -> Any:
        coords = [coord.to_path_str() for coord in selected_coordinates(rows)]
        filters = filters_from_query(parse_query(search))
        try:
            record = get_services().batches.start(current_actor(), filters, coords or None)
        except BatchError as exc:
            return str(exc)
        link = "/fleet" + build_search(record.filters, {"batch": record.batch_id})
        return html.Span(
            [f"Queued a batch of {len(record.runs):,} run(s). ", dcc.Link("Follow it in Fleet", href=link)],
            id="dm-batch-started",
        )

    @app.callback(Output("dm-export", "options"), Input("dm-tabs", "active_tab"))
    def list_exports(tab: str | None) -> Any:
        if tab != "dm-tab-upload":
            raise PreventUpdate
        local = get_services().local_state
        options = []
        try:
            infos = [local.get_export_info(export_id) for export_id in local.get_export_ids()]
        except ExportTrackingError as exc:
            # A corrupt tracking file: say so (naming it) in the picker, rather than a silently empty list.
            return [{"label": str(exc), "value": "", "disabled": True}]
        for info in infos:
            export_id = info["export_id"]
            state = "uploaded" if info.get("uploaded") else "not uploaded"
            options.append(
                {"label": f"{export_id} · {info.get('sample_count', 0)} samples · {state}", "value": export_id}
            )
        return options

    @app.callback(
        Output("dm-upload-plan", "children"),
        Input("dm-plan-upload", "n_clicks"),
        State("dm-export", "value"),
        State("dm-upload-conflict", "value"),
        prevent_initial_call=True,
    )
    def plan_upload(_clicks: int | None, export_id: str | None, policy: str) -> Any:
        if not export_id:
            return dbc.Alert("Choose an export first.", color="info", className="py-2")
        try:
            plan = get_services().operations.plan_ml_upload(export_id, policy)
        except (ValueError, JobError, StorageError) as exc:
            return dbc.Alert(str(exc), color="danger", className="py-2")
        return plan_table([(export_id, plan.counts, plan.bytes_to_transfer, plan.total_bytes)])

    @app.callback(
        Output("dm-upload-msg", "children"),
        Output("dm-tabs", "active_tab", allow_duplicate=True),
        Input("dm-start-upload", "n_clicks"),
        State("dm-export", "value"),
        State("dm-upload-conflict", "value"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_upload(_clicks: int | None, export_id: str | None, policy: str) -> tuple[Any, Any]:
        if not export_id:
            return "Choose an export first.", no_update
        params = {"export_id": str(export_id), "conflict": policy}
        get_services().jobs.submit(JobKind.UPLOAD, str(export_id), params, current_actor())
        return f"Upload of {export_id} started.", "dm-tab-jobs"

    @app.callback(
        Output("dm-dataset-plan", "children"),
        Input("dm-plan-dataset", "n_clicks"),
        State("dm-dataset-name", "value"),
        State("dm-split", "value"),
        State("dm-train-fraction", "value"),
        State(url, "search"),
        prevent_initial_call=True,
    )
    def plan_dataset(_clicks: int | None, name: str | None, split: bool, fraction: Any, search: str | None) -> Any:
        try:
            plan = get_services().operations.plan_dataset_fetch(
                name or "", filters_from_query(parse_query(search)), split=float(fraction) if split else None
            )
        except (ValueError, TypeError, JobError, StorageError) as exc:
            return dbc.Alert(str(exc), color="danger", className="py-2")
        return html.Div(
            [
                html.Div(
                    f"{len(plan.runs)} run(s), {plan.counts.get('download', 0)} files, "
                    f"{format_bytes(plan.total_bytes)}",
                    className="small mb-1",
                ),
                plan_table(
                    [
                        (r.coordinate, {"download": r.samples + r.labels}, r.bytes, r.bytes)
                        for r in plan.runs[:MAX_PLANNED_RUNS]
                    ]
                ),
            ]
        )

    @app.callback(
        Output("dm-dataset-msg", "children"),
        Output("dm-tabs", "active_tab", allow_duplicate=True),
        Input("dm-start-dataset", "n_clicks"),
        State("dm-dataset-name", "value"),
        State("dm-split", "value"),
        State("dm-train-fraction", "value"),
        State(url, "search"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_dataset(_clicks: int | None, name: str | None, split: bool, fraction: Any, search: str | None) -> tuple:
        from src.services.operations.dataset import validate_dataset_name, validate_split

        try:
            dataset = validate_dataset_name(name or "")
            train = validate_split(float(fraction)) if split else None
        except (ValueError, TypeError, JobError) as exc:  # the validators raise JobError with a one-line reason
            return str(exc), no_update
        actor = current_actor()
        params = {
            "name": dataset,
            "filters": filters_from_query(parse_query(search)),
            "split": train,
            "created_by": actor.name,
        }
        get_services().jobs.submit(JobKind.DATASET, dataset, params, actor)
        return f"Fetching dataset {dataset}.", "dm-tab-jobs"

    @app.callback(
        Output("dm-jobs", "children"),
        Output("dm-kpi-jobs-value", "children"),
        Output("dm-finished-jobs", "data"),
        Input("dm-jobs-tick", "n_intervals"),
        State("dm-finished-jobs", "data"),
    )
    def show_jobs(_ticks: int | None, finished_before: Any) -> tuple:
        # A batch's step jobs are folded into its one batch job: a batch of 1,000 runs is one row.
        jobs = get_services().jobs.registry.list(limit=50, exclude_batched=True)
        actor = current_actor()
        may_operate = bool(actor and actor.can(Role.OPERATOR))
        active = sum(job.is_active for job in jobs)
        finished = sum(not job.is_active for job in jobs)
        children = [rendered_job_row(job, may_operate) for job in jobs] or plain(
            [html.P("No jobs yet.", className="text-muted")]
        )
        # Bumping the store when a job ends refreshes the run table (downloaded / extracted columns).
        return children, f"{active:,}", finished if finished != finished_before else no_update

    @app.callback(
        Output("dm-action-msg", "children", allow_duplicate=True),
        Input({"type": "dm-cancel", "job": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def cancel_job(clicks: list[int | None]) -> str:
        triggered = ctx.triggered_id
        if not isinstance(triggered, dict) or "job" not in triggered or not isinstance(clicks, list) or not any(clicks):
            raise PreventUpdate
        job_id = str(triggered["job"])
        accepted = get_services().jobs.cancel(job_id, current_actor())
        return "Cancel requested." if accepted else "That job had already finished."
