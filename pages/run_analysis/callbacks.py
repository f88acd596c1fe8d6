"""Callbacks of the run analysis view: pick a run, move it along the pipeline, show its analysis."""

from __future__ import annotations

import math
from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate

from pages.run_analysis.charts import CHARTS
from pages.run_analysis.inspector import build_inspector_figure, empty_figure, facts, moments_list
from pages.run_analysis.layout import KPIS, VIEW_KEY
from src.analytics.figures import TIME_CHARTS, time_of_click
from src.auth import Role, current_actor, require_role
from src.components.cards import empty_state
from src.components.filter_bar import build_search, filter_url_id, filters_from_query, parse_query
from src.core.extensions import get_services
from src.core.frames import frame_url
from src.jobs.base import Job, JobKind
from src.models import FILTER_LEVELS, DataStatus, NextAction, ProcessingStatus, RunCoordinate
from src.services.run_view import RunView

STEPS = (("cloud", "In the cloud"), ("downloaded", "Downloaded"), ("extracted", "Extracted"), ("analyzed", "Analysed"))
REACHED = {
    DataStatus.NOT_DOWNLOADED: 1,
    DataStatus.DOWNLOADED: 2,
    DataStatus.EXTRACTED: 3,
    DataStatus.ANALYZED: 4,
}
ACTION_JOBS = {
    NextAction.DOWNLOAD: JobKind.DOWNLOAD,
    NextAction.EXTRACT: JobKind.EXTRACT,
    NextAction.ANALYZE: JobKind.ANALYZE,
}
HIDDEN, SHOWN = {"display": "none"}, {}
PIXELATED_BELOW = 320  # frames narrower than this are shown with visible pixels, not blurred when enlarged
LINKED_CHARTS = [chart for chart in CHARTS if chart.name in TIME_CHARTS]


def coordinate_from(search: str | None) -> RunCoordinate | None:
    """Return the run named by the URL, or None while it is incomplete or invalid."""
    query = parse_query(search)
    filters = filters_from_query(query)
    if len(filters) < len(FILTER_LEVELS) or not query.get("timestamp"):
        return None
    try:
        return RunCoordinate.from_filters(filters, query["timestamp"])
    except ValueError:
        return None


def stepper(view: RunView, job: Job | None, may_operate: bool) -> html.Div:
    """Draw cloud → downloaded → extracted → analysed, and the one next action (or the running job)."""
    reached = REACHED.get(view.state.pipeline_status, 0)
    cloud_ok = view.state.cloud_raw_status.bag_count > 0 or reached > 1
    steps = []
    for index, (key, label) in enumerate(STEPS):
        done = cloud_ok if index == 0 else index < reached
        steps.append(
            html.Span(
                [html.Span("●" if done else "○", className="me-1"), label],
                className=f"badge rounded-pill me-2 {'text-bg-success' if done else 'text-bg-light border'}",
                id=f"ra-step-{key}",
            )
        )
    action: Any
    if job is not None and job.is_active:
        action = html.Div(
            [
                html.Div(f"{job.kind.value.capitalize()} running: {job.message or 'starting'}", className="small"),
                dbc.Progress(
                    value=job.percent, label=f"{job.percent:.0f} %", id="ra-progress", style={"height": "16px"}
                ),
            ],
            className="mt-2",
        )
    elif view.next_action is NextAction.COMPLETE:
        action = html.Div("Analysed: charts below.", className="small text-success mt-2", id="ra-action-done")
    elif view.state.blocked_reason:
        action = html.Div(f"Nothing to do: {view.state.blocked_reason}.", className="small text-muted mt-2")
    else:
        label = {"download": "Download bags", "extract": "Extract", "analyze": "Analyse"}[view.next_action.value]
        action = html.Div(
            [
                dbc.Button(
                    label,
                    id="ra-action",
                    color="primary",
                    size="sm",
                    disabled=not may_operate,
                    title=None if may_operate else "Needs the operator role",
                ),
                html.Span(
                    f"Next step: {view.next_action.value}" + ("" if may_operate else " (an operator can start it)"),
                    className="small text-muted ms-2",
                ),
            ],
            className="mt-2",
        )
    failed = (
        html.Div(f"Last {job.kind.value} failed: {job.error}", className="small text-danger mt-1", id="ra-job-error")
        if job is not None and job.status is ProcessingStatus.FAILED
        else None
    )
    return html.Div([html.Div(steps), action, failed])


def kpi_values(view: RunView) -> list[str]:
    """Return the six KPI figures (dashes until the run is analysed)."""
    if view.analysis is None:
        return ["—"] * len(KPIS)
    m = view.analysis.metrics

    def fmt(value: float | None, unit: str, digits: int = 1) -> str:
        return "—" if value is None else f"{value:.{digits}f} {unit}".strip()

    return [
        fmt(m.mean_frame_fps, "Hz"),
        fmt(m.mean_detection_latency_ms, "ms"),
        fmt(m.latency_p95_ms, "ms"),
        "—" if m.total_tracks is None else f"{m.total_tracks:,}",
        fmt(m.avg_track_lifetime, "s"),
        f"{len(m.frame_drops or []):,}",
    ]


def topic_table(metadata: dict[str, Any] | None) -> Any:
    """Summarise the run's topics (type, messages, rate) from the extraction metadata."""
    if not metadata:
        return None
    topics = metadata.get("topics") or []
    if isinstance(topics, dict):
        topics = [{"topic": name, **info} for name, info in topics.items()]
    rows = []
    for topic in topics:
        if not isinstance(topic, dict):
            continue
        count, duration = topic.get("count") or topic.get("messages") or 0, topic.get("duration_s")
        rate = topic.get("rate_hz") or (count / duration if duration else None)
        rows.append(
            html.Tr(
                [
                    html.Td(topic.get("topic") or topic.get("name", "")),
                    html.Td(topic.get("type", "")),
                    html.Td(f"{count:,}"),
                    html.Td("—" if rate is None else f"{rate:.1f} Hz"),
                ]
            )
        )
    head = html.Thead(html.Tr([html.Th(h) for h in ("Topic", "Type", "Messages", "Rate")]))
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("Topics", className="h6"),
                dbc.Table([head, html.Tbody(rows)], size="sm", striped=True, className="mb-0"),
            ]
        ),
        id="ra-topic-table",
    )


def prefetch(coord: RunCoordinate, view: Any) -> list[html.Img]:
    """Return hidden images of the frames before and after: the browser fetches (and keeps) them meanwhile, so
    a step shows its image at once."""
    if not view.width:
        return []
    frame_index = get_services().frames.run_frames(coord).frame_index
    neighbours = [p for p in (view.position + 1, view.position - 1) if 0 <= p < view.count]
    return [html.Img(src=frame_url(coord, int(frame_index[p]), view.version), style=HIDDEN, alt="") for p in neighbours]


def frame_target(
    trigger: Any, clicks: tuple[Any, ...], slider: Any, state: dict[str, Any] | None, start: Any
) -> dict[str, Any]:
    """Return frame_view's keyword arguments for what the user did: a chart click, a moment, a step, the slider."""
    position = state.get("position") if state else None
    position = position if isinstance(position, int) else None
    if isinstance(trigger, dict) and trigger.get("type") == "ra-moment":
        return {"t_s": _seconds(trigger.get("t"))}
    for chart, click in zip(LINKED_CHARTS, clicks, strict=True):
        if trigger == chart.element_id:
            t = time_of_click(chart.name, click)
            if t is None:
                raise PreventUpdate  # a click on the latency histogram, not on a moment of the run
            return {"t_s": t}
    if trigger in ("ra-fi-prev", "ra-fi-next") and position is not None:
        return {"position": position + (1 if trigger == "ra-fi-next" else -1)}
    if trigger == "ra-fi-slider":
        if state and isinstance(slider, int | float) and abs(float(slider) - float(state.get("t") or 0)) < 5e-4:
            raise PreventUpdate  # the slider following a step, not the user moving it
        return {"t_s": _seconds(slider)}
    if position is not None:  # the layers changed, or the same run was shown again
        return {"position": position}
    first = start.get("t") if isinstance(start, dict) else None  # a shared link's ?t=
    return {"t_s": _seconds(first) if first is not None else 0.0}


def _seconds(value: Any) -> float:
    """Return value as finite seconds; raise ValueError (a 400) for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("time must be a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError("time must be a finite number of seconds")
    return seconds


def active_job(coord: RunCoordinate) -> Job | None:
    """Return the newest job for this run (any user's), so a reload shows its progress."""
    target = coord.to_path_str()
    jobs = [job for job in get_services().jobs.registry.list(limit=200) if job.target == target]
    return jobs[0] if jobs else None


def register_callbacks(app: Dash) -> None:
    """Register the run analysis view's callbacks."""
    url = filter_url_id(VIEW_KEY)

    @app.callback(
        Output("ra-timestamp", "options"),
        Output("ra-timestamp", "value"),
        Output(url, "search", allow_duplicate=True),
        Input(url, "search"),
        Input("ra-timestamp", "value"),
        prevent_initial_call="initial_duplicate",
    )
    def choose_run(search: str | None, timestamp: str | None) -> tuple:
        query = parse_query(search)
        filters = filters_from_query(query)
        options = get_services().data_state.get_available_timestamps(filters)
        from_dropdown = timestamp != query.get("timestamp") and timestamp is not None
        chosen = timestamp if from_dropdown else query.get("timestamp")
        if chosen not in options:
            chosen = None  # a different lbid was picked: its runs have other timestamps
        extra = {k: v for k, v in query.items() if k not in (*FILTER_LEVELS, "timestamp")}
        if chosen != query.get("timestamp"):
            extra.pop("t", None)  # a frame time of another run means nothing here
        new_search = build_search(filters, {**extra, "timestamp": chosen} if chosen else extra)
        return options, chosen, new_search if new_search != (search or "") else no_update

    @app.callback(
        Output("ra-pipeline", "children"),
        *[Output(f"{card_id}-value", "children") for card_id, _ in KPIS],
        Output("ra-status", "children"),
        *[Output(chart.element_id, "figure") for chart in CHARTS],
        *[Output(f"{chart.element_id}-box", "style") for chart in CHARTS],
        Output("ra-topics", "children"),
        Output("ra-job", "data"),
        Output("ra-tick", "disabled"),
        Output("ra-inspector", "style"),
        Output("ra-fi-run", "data"),
        Output("ra-moments", "children"),
        Input(url, "search"),
        Input("ra-refresh", "data"),
        State("ra-fi-run", "data"),
    )
    def show_run(search: str | None, _refresh: Any, shown: Any) -> tuple:
        coord = coordinate_from(search)
        blank = (["—"] * len(KPIS), [{}] * len(CHARTS), [HIDDEN] * len(CHARTS))
        if coord is None:
            message = empty_state(
                "Choose a run.", "Pick all five filter levels and a timestamp, or open one from the coverage view."
            )
            return None, *blank[0], message, *blank[1], *blank[2], None, None, True, HIDDEN, None, None
        view = get_services().run_view.get_run_view(coord)
        job = active_job(coord)
        actor = current_actor()
        may_operate = bool(actor and actor.can(Role.OPERATOR))
        figures = [chart.module.build(view.analysis) if view.analysis else None for chart in CHARTS]
        status = None
        if view.problem:
            status = dbc.Alert(view.problem, color="warning", className="py-2")
        elif view.analysis is None:
            status = empty_state(
                "No analysis yet.", "Move the run along the pipeline above; charts appear when it is analysed."
            )
        running = job is not None and job.is_active
        inspect = {"run": coord.to_path_str(), "frames": view.frames, "version": view.frames_version}
        return (
            stepper(view, job, may_operate),
            *kpi_values(view),
            status,
            *[f if f is not None else {} for f in figures],
            *[SHOWN if f is not None else HIDDEN for f in figures],
            topic_table(view.metadata),
            job.id if running else None,
            not running,
            SHOWN if view.frames else HIDDEN,
            # The same run and frames again (a job tick re-rendering the page): leave the inspector where it is.
            no_update if inspect == shown else inspect,
            moments_list(view.moments, lambda index: frame_url(coord, index, view.frames_version, "thumb")),
        )

    @app.callback(
        Output("ra-fi-graph", "figure"),
        Output("ra-fi-frame", "className"),
        Output("ra-fi-info", "children"),
        Output("ra-fi-slider", "max"),
        Output("ra-fi-slider", "value"),
        Output("ra-fi-state", "data"),
        Output("ra-fi-url", "data"),
        Input("ra-fi-run", "data"),
        *[Input(chart.element_id, "clickData") for chart in LINKED_CHARTS],
        Input({"type": "ra-moment", "t": ALL}, "n_clicks"),
        Input("ra-fi-prev", "n_clicks"),
        Input("ra-fi-next", "n_clicks"),
        Input("ra-fi-slider", "value"),
        Input("ra-fi-layers", "value"),
        State("ra-fi-state", "data"),
        State("ra-fi-start", "data"),
        State(url, "search"),
        prevent_initial_call=True,
    )
    def inspect_frame(run: Any, *args: Any) -> tuple:
        clicks = args[: len(LINKED_CHARTS)]
        _moments, _prev, _next, slider, layers, state, start, search = args[len(LINKED_CHARTS) :]
        if not isinstance(run, dict) or not run.get("frames"):
            raise PreventUpdate
        coord = RunCoordinate.from_path(run.get("run"))  # a forged value raises ValueError: 400
        if coord != coordinate_from(search):
            raise PreventUpdate  # the page moved on to another run; its own update follows
        same_run = isinstance(state, dict) and state.get("run") == run["run"]
        where = frame_target(ctx.triggered_id, clicks, slider, state if same_run else None, start)
        view = get_services().frames.frame_view(coord, **where)
        if view is None:
            return empty_figure("This run has no frames."), "", None, 1, 0, None, no_update
        image = frame_url(coord, view.frame_index, view.version) if view.width else None
        chosen = [layer for layer in layers or [] if isinstance(layer, str)]
        query = parse_query(search)
        extra = {key: value for key, value in query.items() if key not in FILTER_LEVELS}
        new_search = build_search(filters_from_query(query), {**extra, "t": f"{view.t_s:.3f}"})
        return (
            build_inspector_figure(view, image, chosen),
            "bb-fi-pixelated" if 0 < view.width < PIXELATED_BELOW else "",
            [facts(view), *prefetch(coord, view)],
            max(view.duration_s, 0.001),
            round(view.t_s, 3),
            {"run": run["run"], "position": view.position, "t": view.t_s},
            new_search,
        )

    app.clientside_callback(
        ClientsideFunction(namespace="bagboard", function_name="replaceSearch"),
        Output("ra-fi-url-done", "data"),
        Input("ra-fi-url", "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("ra-job", "data", allow_duplicate=True),
        Output("ra-tick", "disabled", allow_duplicate=True),
        Input("ra-action", "n_clicks"),
        State(url, "search"),
        prevent_initial_call=True,
    )
    @require_role(Role.OPERATOR)
    def start_next_step(clicks: int | None, search: str | None) -> tuple[str, bool]:
        coord = coordinate_from(search)
        if not clicks or coord is None:
            raise PreventUpdate
        services = get_services()
        # The server decides the action from the run's state, never from what the button said.
        state = services.data_state.get_complete_run_state(coord)
        kind = ACTION_JOBS.get(state.next_action)
        if kind is None or state.blocked_reason:
            raise PreventUpdate
        job = services.jobs.submit(kind, coord.to_path_str(), {"coordinate": coord.to_path_str()}, current_actor())
        return job.id, False

    @app.callback(
        Output("ra-refresh", "data"),
        Output("ra-tick", "disabled", allow_duplicate=True),
        Output("ra-pipeline", "children", allow_duplicate=True),
        Input("ra-tick", "n_intervals"),
        State("ra-job", "data"),
        State(url, "search"),
        prevent_initial_call=True,
    )
    def follow_job(_ticks: int | None, job_id: str | None, search: str | None) -> tuple:
        services = get_services()
        job = services.jobs.registry.get(job_id) if job_id and isinstance(job_id, str) else None
        coord = coordinate_from(search)
        if job is None or coord is None:
            return no_update, True, no_update
        if job.is_active:
            actor = current_actor()
            view = services.run_view.get_run_view(coord)
            return no_update, False, stepper(view, job, bool(actor and actor.can(Role.OPERATOR)))
        # Finished: re-render the whole run (new state, charts) once.
        return job.id, True, no_update
