"""Batches on the tiny demo: dedupe with a job already running, cancel mid-way, roles checked on the server."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from src.auth.roles import AccessDenied, Role
from src.jobs.base import JobKind, NullContext
from src.jobs.worker import execute_job
from src.models import RunCoordinate
from src.models.fleet import BatchRunState
from src.services.batch import BatchError
from tests.conftest import post_callback
from tests.helpers import Actor, wait_for

OPERATOR = Actor("operator", Role.OPERATOR)
VIEWER = Actor("viewer", Role.VIEWER)


@pytest.fixture
def services(app):
    assert app.server.test_cli_runner().invoke(args=["demo", "seed", "--size", "tiny"]).exit_code == 0
    services = app.server.extensions["bagboard.services"]
    yield services
    services.batches.shutdown(wait=False)


def busiest_lbid(services) -> tuple[dict[str, str], list[str]]:
    """Return the filters of the lbid with the most runs with bags, and those runs."""
    rows = [row for row in services.data_state.get_state_summary({}).rows if row["cloud_bags"] > 0]
    parents = Counter(row["coordinate"].rsplit("/", 1)[0] for row in rows)
    parent = parents.most_common(1)[0][0]
    runs = [row["coordinate"] for row in rows if row["coordinate"].startswith(parent + "/")]
    return RunCoordinate.from_path(runs[0]).filters(), runs


def leftovers(data_root: Path) -> list[str]:
    """Return temporary or partial files in the local raw and processed trees (the demo bucket has some on purpose)."""
    found = []
    for tree in ("raw", "processed"):
        found += [
            str(p) for p in (data_root / tree).rglob("*") if p.name.endswith((".tmp", ".part")) or ".part." in p.name
        ]
    return found


def test_a_batch_follows_an_analysis_already_running_instead_of_starting_another(services):
    filters, runs = busiest_lbid(services)
    busy = runs[0]
    coord = RunCoordinate.from_path(busy)
    services.operations.execute_raw_download(coord, "skip", NullContext())
    services.extraction.execute_extraction(coord, NullContext())
    gate = threading.Event()
    real = services.jobs.handlers.get(JobKind.ANALYZE)

    def held(ctx, /, **params):
        if params["coordinate"] == busy:
            gate.wait(60)
        return real(ctx, **params)

    services.jobs.register_handler(JobKind.ANALYZE, held)
    mine = services.jobs.submit(JobKind.ANALYZE, busy, {"coordinate": busy}, OPERATOR)
    record = services.batches.start(OPERATOR, filters)
    assert busy in [run.coordinate for run in record.runs]

    def followed():
        run = next(r for r in services.batches.status(record.batch_id).runs if r.coordinate == busy)
        return run.job_id == mine.id and run.state is BatchRunState.ANALYSING

    wait_for(followed, timeout=30, what="the batch follows the running analysis")
    active = services.jobs.registry.list(limit=100, kinds=[JobKind.ANALYZE], active_only=True)
    assert [job.id for job in active if job.target == busy] == [mine.id]
    gate.set()
    wait_for(lambda: services.batches.status(record.batch_id).status == "complete", timeout=120, what="batch done")
    done = services.batches.status(record.batch_id)
    assert {run.state for run in done.runs} == {BatchRunState.ANALYSED}
    analyses = [job for job in services.jobs.registry.list(limit=200, kinds=[JobKind.ANALYZE]) if job.target == busy]
    assert [job.id for job in analyses] == [mine.id]  # one analysis of that run, not two
    # The job list folds the batch's steps into its one batch job.
    listed = services.jobs.registry.list(limit=50, exclude_batched=True)
    assert [job.kind for job in listed].count(JobKind.BATCH) == 1
    assert not any(job.params.get("batch") for job in listed)
    with pytest.raises(BatchError, match="Nothing to analyse"):
        services.batches.start(OPERATOR, filters)


def test_cancel_mid_way_keeps_finished_runs_analysed_and_leaves_nothing_half_written(services, data_root):
    record = services.batches.start(OPERATOR, {}, concurrency=1)
    assert len(record.runs) >= 4

    def one_analysed():
        counts = services.batches.status(record.batch_id).counts()
        return counts["analysed"] >= 1

    wait_for(one_analysed, timeout=120, what="a first run analysed")
    assert services.batches.cancel(record.batch_id, OPERATOR)
    wait_for(lambda: services.batches.status(record.batch_id).status == "cancelled", timeout=90, what="cancelled")
    done = services.batches.status(record.batch_id)
    analysed = [run.coordinate for run in done.runs if run.state is BatchRunState.ANALYSED]
    cancelled = [run.coordinate for run in done.runs if run.state is BatchRunState.CANCELLED]
    assert analysed and cancelled and len(analysed) + len(cancelled) == len(done.runs)
    for path in analysed:
        assert services.analytics.has_current_analysis(RunCoordinate.from_path(path))
    assert not any(services.analytics.has_current_analysis(RunCoordinate.from_path(path)) for path in cancelled)
    # No step of the batch is still running, and no partial file anywhere.
    steps = [job for job in services.jobs.registry.list(limit=200) if job.params.get("batch") == record.batch_id]
    assert steps and not any(job.is_active for job in steps)
    assert leftovers(data_root) == []
    fleet = services.fleet.get_report({})
    assert sorted(fleet.runs["coordinate"]) == sorted(analysed)  # the fleet shows exactly what finished


def test_a_viewer_sees_the_fleet_but_cannot_start_or_cancel_a_batch(services, app, client, auth):
    with pytest.raises(AccessDenied):
        services.batches.start(VIEWER, {})
    auth.login("viewer")
    assert client.get("/fleet").status_code == 200
    url_key = '{"type":"filter-url","view":"fleet"}.search'
    shown = post_callback(client, app, "fl-coverage.children", {url_key: "", "fl-period.value": "day"})
    assert shown.status_code == 200
    refused = post_callback(
        client,
        app,
        "fl-batch-id.data",
        {"fl-start-batch.n_clicks": 1, url_key: ""},
        triggered="fl-start-batch.n_clicks",
    )
    assert refused.status_code == 403
    assert services.batches.list() == []  # nothing was queued
    refused = post_callback(
        client,
        app,
        "fl-batch-msg.children",
        {"fl-batch-cancel.n_clicks": 1, "fl-batch-id.data": "0" * 32},
        triggered="fl-batch-cancel.n_clicks",
        via="fl-batch-cancel.n_clicks",
    )
    assert refused.status_code == 403
    dm_search = '{"type":"filter-url","view":"download-manager"}.search'
    refused = post_callback(
        client,
        app,
        "dm-batch-msg.children",
        {"dm-start-batch.n_clicks": 1, "dm-grid.selectedRows": [], dm_search: ""},
        triggered="dm-start-batch.n_clicks",
    )
    assert refused.status_code == 403
    assert services.batches.list() == []


def test_an_operator_analyses_the_ticked_runs_from_the_download_manager(services, app, client, auth):
    auth.login("operator")
    rows = [row for row in services.data_state.get_state_summary({}).rows if row["cloud_bags"] > 0][:2]
    dm_search = '{"type":"filter-url","view":"download-manager"}.search'
    response = post_callback(
        client,
        app,
        "dm-batch-msg.children",
        {"dm-start-batch.n_clicks": 1, "dm-grid.selectedRows": rows, dm_search: ""},
        triggered="dm-start-batch.n_clicks",
    )
    assert response.status_code == 200 and "Queued a batch of 2 run(s)" in response.get_data(as_text=True)
    (record,) = services.batches.list()
    assert sorted(run.coordinate for run in record.runs) == sorted(row["coordinate"] for row in rows)
    wait_for(lambda: services.batches.status(record.batch_id).status == "complete", timeout=120, what="batch done")


class ThreadWorkers:
    """Stands in for Celery: each queued job runs in a thread of its own, from the registry, like a worker would."""

    def __init__(self, registry, handlers) -> None:
        self.registry, self.handlers = registry, handlers
        self.sent: list[str] = []
        self.threads: list[threading.Thread] = []

    def dispatch(self, job_id: str) -> None:
        self.sent.append(job_id)
        thread = threading.Thread(target=execute_job, args=(self.registry, self.handlers, job_id), daemon=True)
        thread.start()
        self.threads.append(thread)


def test_a_batch_runs_its_steps_on_queue_workers_too(services):
    from src.jobs.runner import HandlerSet, JobRunner
    from src.services.batch import BatchService
    from src.services.job_handlers import bind_handlers

    handlers = HandlerSet()
    bind_handlers(handlers, services)
    workers = ThreadWorkers(services.jobs.registry, handlers)
    queued = JobRunner(services.jobs.registry, HandlerSet(dict.fromkeys(handlers, lambda ctx: None)), celery=workers)
    batches = BatchService(services.data_state, services.local_state, services.analytics, queued, concurrency=2)
    filters, runs = busiest_lbid(services)
    record = batches.start(OPERATOR, filters)
    wait_for(lambda: batches.status(record.batch_id).status == "complete", timeout=180, what="batch done")
    done = batches.status(record.batch_id)
    assert {run.state for run in done.runs} == {BatchRunState.ANALYSED} and len(done.runs) == len(runs)
    steps = [job for job in services.jobs.registry.list(limit=200) if job.params.get("batch") == record.batch_id]
    assert sorted(job.id for job in steps) == sorted(workers.sent)  # every step went through the queue
    assert Counter(job.kind for job in steps) == {
        JobKind.DOWNLOAD: len(runs),
        JobKind.EXTRACT: len(runs),
        JobKind.ANALYZE: len(runs),
    }
    batches.shutdown()
    queued.shutdown()
