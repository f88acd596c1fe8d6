"""The runner: role checks, dedupe, status transitions, cancel, failures, heartbeats and a killed worker."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from src.auth.roles import AccessDenied, Role
from src.jobs.base import JobCancelled, JobContext, JobError, JobKind
from src.jobs.context import RegistryContext
from src.jobs.registry import INTERRUPTED_ERROR, JobRegistry
from src.jobs.runner import JobRunner
from src.jobs.worker import HandlerSet, builtin_handlers, load_handlers
from src.models.status import ProcessingStatus
from tests.jobs.helpers import FORK, Actor, StoreSpec, run_endless_job_in_child, wait_for, wait_terminal

RUN = "c1/r1/f1/t1/l1/2024-05-14T10-32-00"
MakeRunner = Callable[..., JobRunner]


def blocking_handler(release: threading.Event) -> Callable[..., dict[str, Any]]:
    """Return a handler that reports one file, then waits for release (honouring cancels meanwhile)."""

    def handler(ctx: JobContext, /, **_: Any) -> dict[str, Any]:
        ctx.progress(files_done=1, files_total=2)
        while not release.wait(0.005):
            ctx.check_cancelled()
        return {"released": True}

    return handler


def test_sleep_job_runs_to_complete(registry: JobRegistry, make_runner: MakeRunner, operator: Actor) -> None:
    runner = make_runner(builtin_handlers())

    job = runner.submit(JobKind.SLEEP, "smoke", {"seconds": 0.05, "steps": 5}, operator)
    assert job.status in (ProcessingStatus.PENDING, ProcessingStatus.IN_PROGRESS)
    done = wait_terminal(registry, job.id)

    assert done.status is ProcessingStatus.COMPLETE and done.error is None
    assert (done.files_done, done.files_total, done.percent) == (5, 5, 100.0)
    assert done.result == {"slept_s": pytest.approx(0.05), "steps": 5}
    assert done.log_tail[-1] == "step 5 done" and done.started_by == "operator"
    assert done.started_at is not None and done.finished_at is not None and done.finished_at >= done.started_at


def test_submitting_a_running_job_again_returns_it(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor, admin: Actor
) -> None:
    release = threading.Event()
    runner = make_runner({JobKind.DOWNLOAD: blocking_handler(release)})

    first = runner.submit(JobKind.DOWNLOAD, RUN, {}, operator)
    wait_for(lambda: registry.get(first.id).status is ProcessingStatus.IN_PROGRESS)  # type: ignore[union-attr]
    second = runner.submit(JobKind.DOWNLOAD, RUN, {"other": 1}, admin)
    release.set()

    assert second.id == first.id and second.started_by == "operator"
    assert wait_terminal(registry, first.id).status is ProcessingStatus.COMPLETE
    assert len(registry.list()) == 1


def test_cancel_stops_the_loop_and_keeps_partial_progress(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    reached, resume = threading.Event(), threading.Event()

    def fifty_files(ctx: JobContext, /, **_: Any) -> dict[str, Any]:
        for number in range(50):
            ctx.check_cancelled()
            ctx.progress(files_done=number, files_total=50, message=f"file {number}")
            if number == 10:
                reached.set()
                resume.wait(5)
        return {"files": 50}

    runner = make_runner({JobKind.DOWNLOAD: fifty_files})
    job = runner.submit(JobKind.DOWNLOAD, RUN, {}, operator)
    assert reached.wait(5)
    assert runner.cancel(job.id, operator)
    resume.set()
    cancelled = wait_terminal(registry, job.id)

    assert cancelled.status is ProcessingStatus.CANCELLED and cancelled.message == "cancelled"
    assert (cancelled.files_done, cancelled.files_total) == (10, 50)
    assert cancelled.error is None and cancelled.result == {}
    assert not runner.cancel(job.id, operator)  # already over


def test_a_job_error_fails_the_job_with_its_one_line_message(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    def broken(ctx: JobContext, /, **_: Any) -> dict[str, Any]:
        ctx.progress(files_done=2, files_total=4)
        raise JobError("bucket raw-bags is not reachable\n  (checked twice)")

    runner = make_runner({JobKind.DOWNLOAD: broken})
    failed = wait_terminal(registry, runner.submit(JobKind.DOWNLOAD, RUN, {}, operator).id)

    assert failed.status is ProcessingStatus.FAILED
    assert failed.error == "bucket raw-bags is not reachable (checked twice)"
    assert failed.files_done == 2  # progress before the failure is kept


def test_an_unexpected_error_shows_only_its_type(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    def crashing(ctx: JobContext, /, **_: Any) -> dict[str, Any]:
        raise KeyError("/secret/path/in/the/message")

    runner = make_runner({JobKind.EXTRACT: crashing})
    with capture_logs() as logs:
        failed = wait_terminal(registry, runner.submit(JobKind.EXTRACT, RUN, {}, operator).id)

    assert failed.status is ProcessingStatus.FAILED
    assert failed.error == "unexpected error (KeyError)"
    assert "\n" not in failed.error and "secret" not in failed.error and "Traceback" not in failed.error
    crash = wait_for(lambda: [entry for entry in logs if entry["event"] == "job_crashed"])[0]
    assert crash["job_id"] == failed.id and crash["exc_info"] is True  # the traceback goes to the log


def test_a_viewer_can_neither_submit_nor_cancel(
    registry: JobRegistry, make_runner: MakeRunner, viewer: Actor, operator: Actor, admin: Actor
) -> None:
    release = threading.Event()
    runner = make_runner({JobKind.DOWNLOAD: blocking_handler(release)})

    with pytest.raises(AccessDenied):
        runner.submit(JobKind.DOWNLOAD, RUN, {}, viewer)
    with pytest.raises(AccessDenied):
        runner.submit(JobKind.DOWNLOAD, RUN, {}, None)
    assert registry.list() == []

    job = runner.submit(JobKind.DOWNLOAD, RUN, {}, operator)
    wait_for(lambda: registry.get(job.id).status is ProcessingStatus.IN_PROGRESS)  # type: ignore[union-attr]
    with pytest.raises(AccessDenied):
        runner.cancel(job.id, viewer)
    assert not registry.is_cancel_requested(job.id)

    assert runner.cancel(job.id, admin)
    assert wait_terminal(registry, job.id).status is ProcessingStatus.CANCELLED


def test_submit_checks_the_required_role_and_the_kind(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    runner = make_runner(builtin_handlers())

    with pytest.raises(AccessDenied):
        runner.submit(JobKind.SLEEP, "inventory", {}, operator, required_role=Role.ADMIN)
    with pytest.raises(ValueError, match="no handler"):
        runner.submit(JobKind.DOWNLOAD, RUN, {}, operator)
    assert registry.list() == []


def test_progress_writes_are_throttled_but_the_last_one_lands(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    registry.start(job.id)
    writes: list[dict[str, Any]] = []
    update = registry.update_progress

    def counting(job_id: str, **fields: Any) -> bool:
        writes.append(fields)
        return update(job_id, **fields)

    registry.update_progress = counting  # type: ignore[method-assign]
    clock = [0.0]
    ctx = RegistryContext(registry, job.id, clock=lambda: clock[0])
    for chunk in range(1, 1001):  # one simulated second of 1 ms chunks
        clock[0] = chunk / 1000
        ctx.progress(bytes_done=chunk * 10, bytes_total=10_000)
    ctx.flush()

    assert len(writes) <= 6  # at most four a second, plus the first and the final flush
    stored = registry.get(job.id)
    assert stored is not None and (stored.bytes_done, stored.bytes_total) == (10_000, 10_000)


def test_cancel_checks_are_cached(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    registry.start(job.id)
    clock = [0.0]
    ctx = RegistryContext(registry, job.id, clock=lambda: clock[0])

    ctx.check_cancelled()
    registry.request_cancel(job.id)
    clock[0] = 0.4
    ctx.check_cancelled()  # still the cached answer
    clock[0] = 0.6
    with pytest.raises(JobCancelled):
        ctx.check_cancelled()


def test_heartbeats_keep_long_jobs_alive_and_stale_jobs_fail(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    orphan, _ = registry.create(JobKind.EXTRACT, "orphan")  # its process died before any heartbeat thread ran
    registry.start(orphan.id)
    release = threading.Event()
    runner = make_runner({JobKind.DOWNLOAD: blocking_handler(release)}, heartbeat_timeout=0.3)
    job = runner.submit(JobKind.DOWNLOAD, RUN, {}, operator)

    failed = wait_terminal(registry, orphan.id)
    time.sleep(0.4)  # longer than the timeout: only heartbeats keep the running job alive
    release.set()

    assert failed.status is ProcessingStatus.FAILED and failed.error == INTERRUPTED_ERROR
    assert wait_terminal(registry, job.id).status is ProcessingStatus.COMPLETE


def test_a_killed_worker_process_leaves_an_interrupted_job(spec: StoreSpec, registry: JobRegistry) -> None:
    child = FORK.Process(target=run_endless_job_in_child, args=(spec, RUN), daemon=True)
    child.start()
    try:
        job = wait_for(lambda: [j for j in registry.list(active_only=True) if j.files_done > 0], timeout=10)[0]
        assert job.status is ProcessingStatus.IN_PROGRESS
    finally:
        os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
        child.join(timeout=5)

    assert wait_for(lambda: registry.mark_interrupted(timeout_s=0.3), timeout=5) == [job.id]
    failed = registry.get(job.id)
    assert failed is not None and failed.status is ProcessingStatus.FAILED
    assert failed.error == INTERRUPTED_ERROR and failed.files_done >= job.files_done


def test_shutdown_without_wait_interrupts_running_and_queued_jobs(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    release = threading.Event()
    runner = make_runner({JobKind.DOWNLOAD: blocking_handler(release)}, max_workers=1)
    running = runner.submit(JobKind.DOWNLOAD, "a", {}, operator)
    wait_for(lambda: registry.get(running.id).status is ProcessingStatus.IN_PROGRESS)  # type: ignore[union-attr]
    queued = runner.submit(JobKind.DOWNLOAD, "b", {}, operator)

    runner.shutdown(wait=False)

    for job_id in (running.id, queued.id):
        ended = wait_terminal(registry, job_id)
        assert ended.status is ProcessingStatus.FAILED and ended.error == INTERRUPTED_ERROR
    with pytest.raises(RuntimeError, match="shut down"):
        runner.submit(JobKind.DOWNLOAD, "c", {}, operator)


def test_a_starting_runner_purges_jobs_past_retention(
    registry: JobRegistry, make_runner: MakeRunner, operator: Actor
) -> None:
    old, _ = registry.create(JobKind.DOWNLOAD, "old")
    registry.finish(old.id, ProcessingStatus.COMPLETE)
    time.sleep(0.05)

    make_runner(builtin_handlers(), retention_s=0.01)

    assert registry.get(old.id) is None
    with pytest.raises(ValueError, match="longer than"):
        make_runner(builtin_handlers(), heartbeat_interval=1.0, heartbeat_timeout=0.5)


def test_handlers_come_from_the_configured_hook(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("BAGBOARD_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("BAGBOARD_ENV", "test")
    # The default hook builds the services from the environment, as a Celery worker does.
    assert {JobKind.SLEEP, JobKind.DOWNLOAD, JobKind.UPLOAD, JobKind.DATASET} <= set(load_handlers())

    monkeypatch.setenv("BAGBOARD_JOB_HANDLERS", "tests.jobs.helpers:register_echo")
    assert set(load_handlers()) == {JobKind.SLEEP, JobKind.ANALYZE}
    handlers = HandlerSet()
    handlers.register_handler("download", builtin_handlers().get(JobKind.SLEEP))  # type: ignore[arg-type]
    assert JobKind.DOWNLOAD in handlers and "nonsense" not in handlers
