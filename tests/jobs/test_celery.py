"""The Celery seam: submit records then queues the job; the worker task runs it from the registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from src.jobs import celery_app
from src.jobs.base import JobKind
from src.jobs.registry import JobRegistry
from src.jobs.runner import CeleryExecutor
from src.jobs.worker import RUN_JOB_TASK, builtin_handlers
from src.models.status import ProcessingStatus
from tests.jobs.helpers import Actor, FakeCeleryApp, StoreSpec, wait_terminal


@pytest.fixture
def worker_env(spec: StoreSpec, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the worker task's environment at the test store."""
    for name in ("BAGBOARD_JOBS_REDIS_URL", "BAGBOARD_CACHE_REDIS_URL", "BAGBOARD_JOB_HANDLERS"):
        monkeypatch.delenv(name, raising=False)
    if spec.backend == "sqlite":
        monkeypatch.setenv("BAGBOARD_DATA_ROOT", str(Path(spec.location).parent))
    else:
        monkeypatch.setenv("BAGBOARD_JOBS_REDIS_URL", spec.location)
        monkeypatch.setenv("BAGBOARD_JOBS_REDIS_PREFIX", spec.prefix)
    celery_app.reset_worker_state()
    yield
    celery_app.reset_worker_state()


def test_submit_queues_the_job_and_the_worker_task_runs_it(
    registry: JobRegistry, make_runner, operator: Actor, worker_env: None
) -> None:
    fake = FakeCeleryApp()
    runner = make_runner(builtin_handlers(), celery=CeleryExecutor(app=fake))

    job = runner.submit(JobKind.SLEEP, "smoke", {"seconds": 0.01, "steps": 2}, operator)
    assert job.status is ProcessingStatus.PENDING and job.heartbeat_at is None  # the queue, not us, holds it
    assert fake.sent == [(RUN_JOB_TASK, [job.id])]
    assert runner.submit(JobKind.SLEEP, "smoke", {}, operator).id == job.id
    assert len(fake.sent) == 1

    assert celery_app.run_job(job.id) == "complete"
    done = registry.get(job.id)
    assert done is not None and done.status is ProcessingStatus.COMPLETE and done.files_done == 2
    assert celery_app.run_job(job.id) == "complete"  # a redelivered message does not run it twice
    assert celery_app.run_job("no-such-job") is None


def test_a_job_cancelled_while_queued_never_runs(
    registry: JobRegistry, make_runner, operator: Actor, worker_env: None
) -> None:
    runner = make_runner(builtin_handlers(), celery=CeleryExecutor(app=FakeCeleryApp()))
    job = runner.submit(JobKind.SLEEP, "smoke", {"seconds": 5}, operator)

    assert runner.cancel(job.id, operator)
    assert celery_app.run_job(job.id) == "cancelled"
    assert registry.get(job.id).started_at is None  # type: ignore[union-attr]


def test_an_unreachable_broker_fails_the_job(registry: JobRegistry, make_runner, operator: Actor) -> None:
    runner = make_runner(builtin_handlers(), celery=CeleryExecutor(app=FakeCeleryApp(ConnectionError("down"))))

    job = runner.submit(JobKind.SLEEP, "smoke", {}, operator)

    assert job.status is ProcessingStatus.FAILED and job.error == "could not queue the job (ConnectionError)"
    assert registry.create(JobKind.SLEEP, "smoke")[1]  # the slot is free for a retry


@pytest.mark.parametrize("spec", ["redis"], indirect=True)
def test_a_real_worker_runs_a_job_from_a_redis_broker(
    spec: StoreSpec, registry: JobRegistry, make_runner, operator: Actor, worker_env: None
) -> None:
    from celery.contrib.testing.worker import start_worker

    # Redis, not memory://: the memory transport's worker loop needs ~2 s to notice a shutdown.
    app = celery_app.make_celery_app(spec.location.replace("/0", "/1"))
    app.conf.task_default_queue = f"{spec.prefix}queue"
    runner = make_runner(builtin_handlers(), celery=CeleryExecutor(app=app))
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=5):
        job = runner.submit(JobKind.SLEEP, "smoke", {"seconds": 0.01, "steps": 3}, operator)
        done = wait_terminal(registry, job.id, timeout=10)

    assert done.status is ProcessingStatus.COMPLETE and done.files_done == 3 and done.result["steps"] == 3
