"""Scale-out with real engines: two gunicorn web processes and a Celery worker sharing Redis and a data root.

Each test drives the web processes the way a browser does (the login form, then Dash callbacks) and
checks what a user would see; the processes' logs show which of them did the work.
"""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from src.auth.roles import Role
from src.jobs.base import Job, JobKind
from src.models.status import ProcessingStatus
from tests.helpers import Actor, wait_for
from tests.scaleout.conftest import HEARTBEAT_TIMEOUT, Stack
from tests.scaleout.stack import DashClient, JobRow, Service

pytestmark = pytest.mark.slow

JOB_TIMEOUT = 20.0


def downloadable_runs(client: DashClient) -> list[str]:
    """Return the runs the client's run table lists with raw bags in the cloud and nothing downloaded yet."""
    rows = client.run_table()
    return sorted(row["coordinate"] for row in rows if row["cloud_bags"] > 0 and not row["downloaded"])


def wait_job_row(
    client: DashClient, status: str, *, job_id: str | None = None, kind: str = "", target: str = ""
) -> JobRow:
    """Poll the client's Jobs tab until the job (by id, or the only one of kind/target) shows status."""

    seen: list[JobRow] = []

    def shown() -> JobRow | None:
        rows = [
            row
            for row in client.jobs().values()
            if (job_id is None or row.id == job_id)
            and (not kind or row.kind == kind)
            and (not target or row.target == target)
        ]
        assert len(rows) <= 1, f"{client.label}: more than one job matches: {rows}"
        seen[:] = rows
        return rows[0] if rows and rows[0].status == status else None

    what = f"{client.label} showing job {job_id or kind + ' ' + target} as {status}"
    try:
        return wait_for(shown, JOB_TIMEOUT, what, 0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen or 'no such job'}") from None


def stored(stack: Stack, job_id: str) -> Job:
    """Return the job as the shared registry holds it."""
    job = stack.registry.get(job_id)
    assert job is not None, f"job {job_id} is not in the registry"
    return job


def log_lines(service: Service, event: str, job_id: str) -> list[str]:
    """Return the service's log lines recording event for job_id."""
    return [line for line in service.log().splitlines() if event in line and f"job_id={job_id}" in line]


def test_a_download_started_on_a_runs_on_the_worker_and_b_shows_it_done(scale_stack: Stack) -> None:
    a, b = scale_stack.client("a", "ann"), scale_stack.client("b", "bob")
    coordinate = downloadable_runs(a)[0]

    message = a.start_download(coordinate)

    assert message == "Started 1 download job(s); 0 were already running or queued."
    done = wait_job_row(b, "complete", kind="download", target=coordinate)
    assert done.started_by == "ann" and done.detail.startswith("1/1 files") and not done.error
    # B's run table sees the bag that landed on the shared data root.
    assert next(row for row in b.run_table() if row["coordinate"] == coordinate)["downloaded"]
    # A queued it, the worker ran it, and neither web process ran any job.
    assert log_lines(scale_stack.web_a, "job_submitted", done.id)
    assert log_lines(scale_stack.worker, "job_started", done.id)
    assert log_lines(scale_stack.worker, "job_complete", done.id)
    for web in (scale_stack.web_a, scale_stack.web_b):
        assert "job_started" not in web.log(), f"{web.name} ran a job itself"


def test_an_inventory_refresh_from_a_reaches_b(scale_stack: Stack) -> None:
    admin_a, b = scale_stack.client("a", "ada"), scale_stack.client("b", "bob")
    before = b.home_run_count()  # B now holds the current inventory in memory
    assert before == admin_a.home_run_count() and before > 0
    # A new recording appears in the raw bucket (a local directory here).
    raw = scale_stack.data_root / "buckets" / "raw"
    bag = next(raw.glob("*/*/*/*/*/*/*.bag"))  # a ROS1 bag right in its run folder
    new_run = bag.parent.parent / "2030-01-01T00-00-00"
    new_run.mkdir()
    shutil.copyfile(bag, new_run / "2030-01-01-00-00-00.bag")

    job_id = admin_a.start_inventory_refresh()
    status = wait_for(
        lambda: (line := admin_a.refresh_status(job_id)).startswith("Refreshed") and line,
        JOB_TIMEOUT,
        "A reporting the refresh done",
        0.2,
    )

    assert status == f"Refreshed: {before + 1:,} runs."
    # B never listed the buckets: it reloads the snapshot because the generation in Redis moved.
    assert b.home_run_count() == before + 1
    assert log_lines(scale_stack.worker, "job_started", job_id)
    for web in (scale_stack.web_a, scale_stack.web_b):
        assert "inventory_refreshed" not in web.log(), f"{web.name} listed the buckets itself"


def test_the_same_download_started_on_a_and_b_at_once_is_one_job(scale_stack: Stack) -> None:
    # Two users: the message counts a job as newly started only for the user who created it.
    a, b = scale_stack.client("a", "ann"), scale_stack.client("b", "bob")
    coordinate = downloadable_runs(a)[-1]
    # Keep both worker threads busy so the download cannot finish between the two clicks: then a second
    # job would be right, and the race would prove nothing.
    operator = Actor("ops", Role.OPERATOR)
    busy = [scale_stack.runner.submit(JobKind.SLEEP, f"busy-{n}", {"seconds": 2, "steps": 4}, operator) for n in (1, 2)]
    wait_for(
        lambda: all(stored(scale_stack, job.id).status is ProcessingStatus.IN_PROGRESS for job in busy),
        JOB_TIMEOUT,
        "the worker running both sleep jobs",
    )

    barrier = threading.Barrier(2, timeout=10)
    messages: dict[str, str] = {}

    def click(client: DashClient) -> None:
        barrier.wait()
        messages[client.label] = client.start_download(coordinate)

    threads = [threading.Thread(target=click, args=(client,)) for client in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(messages.values()) == [
        "Started 1 download job(s); 0 were already running or queued.",
        "Started 1 download job(s); 1 were already running or queued.",
    ]
    done = wait_job_row(b, "complete", kind="download", target=coordinate)  # fails if there are two
    assert wait_job_row(a, "complete", kind="download", target=coordinate).id == done.id
    jobs = [job for job in scale_stack.registry.list(kinds=[JobKind.DOWNLOAD]) if job.target == coordinate]
    assert [job.id for job in jobs] == [done.id]


def test_a_killed_workers_job_fails_as_interrupted_and_a_retry_succeeds(scale_stack: Stack) -> None:
    b = scale_stack.client("b", "bob")
    operator = Actor("ops", Role.OPERATOR)
    params = {"seconds": 5, "steps": 10}
    job = scale_stack.runner.submit(JobKind.SLEEP, "kill-me", params, operator)
    running = wait_job_row(b, "in progress", job_id=job.id)
    wait_for(lambda: stored(scale_stack, job.id).files_done >= 1, JOB_TIMEOUT, "the first step done")
    assert running.kind == "sleep"

    killed = scale_stack.worker
    try:
        killed.kill()  # SIGKILL: no goodbye, no cleanup, like a lost host
        killed_at = time.monotonic()
        failed = wait_job_row(b, "failed", job_id=job.id)
        waited = time.monotonic() - killed_at
    finally:
        scale_stack.start_worker()

    assert failed.error == "interrupted: the worker running it stopped"
    assert not failed.detail.startswith("10/10")  # it stopped part way
    assert waited < HEARTBEAT_TIMEOUT + 5, f"noticed after {waited:.1f} s"
    assert log_lines(killed, "job_started", job.id)
    # With no worker alive, it was the web processes' heartbeat threads that noticed the stale job.
    webs = (scale_stack.web_a, scale_stack.web_b)
    assert any(job.id in line for web in webs for line in web.log().splitlines() if "jobs_interrupted" in line)
    # The same job again, as a user's retry: a new job on the new worker, which finishes.
    retry = scale_stack.runner.submit(JobKind.SLEEP, "kill-me", params, operator)
    assert retry.id != job.id
    done = wait_job_row(b, "complete", job_id=retry.id)
    assert done.detail.startswith("10/10 files")
    assert log_lines(scale_stack.worker, "job_complete", retry.id)
    assert b.jobs()[job.id].status == "failed"
