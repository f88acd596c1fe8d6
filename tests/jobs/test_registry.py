"""The registry contract, run against SQLite and (when redis-server exists) Redis."""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from src.jobs.base import JobKind
from src.jobs.registry import (
    INTERRUPTED_ERROR,
    JobRegistry,
    RedisJobRegistry,
    SqliteJobRegistry,
    open_registry,
    registry_from_env,
)
from src.jobs.registry_base import CANCELLED_BEFORE_START, MAX_LOG_LINE
from src.models.status import ProcessingStatus
from tests.jobs.helpers import FORK, StoreSpec, create_in_child, create_with_inherited

RUN = "c1/r1/f1/t1/l1/2024-05-14T10-32-00"


def test_create_then_get_returns_the_same_job(registry: JobRegistry) -> None:
    job, created = registry.create(JobKind.DOWNLOAD, RUN, {"overwrite": True, "files": ["a.bag"]}, "operator")

    assert created
    assert job.status is ProcessingStatus.PENDING and job.kind is JobKind.DOWNLOAD and job.target == RUN
    assert job.params == {"overwrite": True, "files": ["a.bag"]} and job.started_by == "operator"
    assert job.created_at is not None and job.created_at.tzinfo is not None
    assert job.created_at.utcoffset() == timedelta(0)
    assert job.heartbeat_at is not None and job.started_at is None and job.finished_at is None
    assert registry.get(job.id) == job
    assert registry.get("no-such-job") is None


def test_create_rejects_params_that_are_not_json(registry: JobRegistry) -> None:
    with pytest.raises(ValueError, match="JSON"):
        registry.create(JobKind.DOWNLOAD, RUN, {"when": object()})
    assert registry.list() == []


def test_list_is_newest_first_and_filters(registry: JobRegistry) -> None:
    first, _ = registry.create(JobKind.DOWNLOAD, "run-1")
    second, _ = registry.create(JobKind.EXTRACT, "run-1")
    third, _ = registry.create(JobKind.DOWNLOAD, "run-2")
    registry.finish(first.id, ProcessingStatus.COMPLETE)

    assert [job.id for job in registry.list()] == [third.id, second.id, first.id]
    assert [job.id for job in registry.list(limit=2)] == [third.id, second.id]
    assert [job.id for job in registry.list(kinds=[JobKind.DOWNLOAD])] == [third.id, first.id]
    assert [job.id for job in registry.list(kinds=["download"], active_only=True)] == [third.id]
    assert [job.id for job in registry.list(active_only=True)] == [third.id, second.id]
    assert registry.list(kinds=[]) == []


def test_list_can_leave_out_the_steps_of_batches(registry: JobRegistry) -> None:
    batch, _ = registry.create(JobKind.BATCH, "batch/1", {"batch_id": "1"})
    steps = [
        registry.create(JobKind.DOWNLOAD, f"run-{i}", {"coordinate": f"run-{i}", "batch": "1"})[0] for i in range(3)
    ]
    alone, _ = registry.create(JobKind.EXTRACT, "run-9", {"coordinate": "run-9"})
    assert [job.id for job in registry.list(exclude_batched=True)] == [alone.id, batch.id]
    assert [job.id for job in registry.list(exclude_batched=True, active_only=True)] == [alone.id, batch.id]
    assert [job.id for job in registry.list(limit=1, exclude_batched=True)] == [alone.id]
    assert len(registry.list()) == 2 + len(steps)


def test_the_same_kind_and_target_cannot_be_active_twice(registry: JobRegistry) -> None:
    job, created = registry.create(JobKind.DOWNLOAD, RUN, started_by="alice")
    again, created_again = registry.create(JobKind.DOWNLOAD, RUN, started_by="bob")
    other_kind, created_other = registry.create(JobKind.EXTRACT, RUN)

    assert created and not created_again and created_other
    assert again.id == job.id and again.started_by == "alice"
    assert other_kind.id != job.id

    registry.start(job.id)
    assert registry.create(JobKind.DOWNLOAD, RUN)[0].id == job.id  # running counts as active too
    registry.finish(job.id, ProcessingStatus.COMPLETE)
    fresh, created_fresh = registry.create(JobKind.DOWNLOAD, RUN)
    assert created_fresh and fresh.id != job.id


def test_concurrent_creates_in_threads_make_one_job(registry: JobRegistry) -> None:
    barrier = threading.Barrier(12)
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait(timeout=5)
        job, created = registry.create(JobKind.DOWNLOAD, RUN)
        with lock:
            results.append((job.id, created))

    threads = [threading.Thread(target=race) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(results) == 12
    assert sum(created for _, created in results) == 1
    assert len({job_id for job_id, _ in results}) == 1
    assert len(registry.list(active_only=True)) == 1


def test_concurrent_creates_in_processes_make_one_job(spec: StoreSpec, registry: JobRegistry) -> None:
    barrier, results = FORK.Barrier(4), FORK.Queue()
    children = [FORK.Process(target=create_in_child, args=(spec, barrier, results)) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=10) for _ in children]
    for child in children:
        child.join(timeout=10)

    assert [child.exitcode for child in children] == [0, 0, 0, 0]
    assert sum(created for _, created in outcomes) == 1
    assert len({job_id for job_id, _ in outcomes}) == 1
    assert [job.id for job in registry.list()] == [outcomes[0][0]]


def test_progress_is_visible_to_another_instance(spec: StoreSpec, registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    assert registry.start(job.id)
    before = registry.get(job.id)
    assert before is not None and before.heartbeat_at is not None

    assert registry.update_progress(job.id, files_done=3, files_total=10, bytes_done=300, message="a.bag")
    other = spec.open()
    try:
        seen = other.get(job.id)
    finally:
        other.close()

    assert seen is not None and seen.status is ProcessingStatus.IN_PROGRESS
    assert (seen.files_done, seen.files_total, seen.bytes_done, seen.bytes_total) == (3, 10, 300, 0)
    assert seen.message == "a.bag" and seen.percent == pytest.approx(30.0)
    assert seen.started_at is not None and seen.heartbeat_at is not None and seen.heartbeat_at >= before.heartbeat_at


def test_progress_rejects_unknown_fields_and_ended_jobs(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    with pytest.raises(ValueError, match="status"):
        registry.update_progress(job.id, status="complete")
    registry.finish(job.id, ProcessingStatus.COMPLETE)

    assert not registry.update_progress(job.id, files_done=99)
    ended = registry.get(job.id)
    assert ended is not None and ended.files_done == 0


def test_log_tail_keeps_the_last_lines(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    for number in range(5):
        registry.append_log(job.id, f"line {number}", keep=3)
    registry.append_logs(job.id, ["x" * (MAX_LOG_LINE + 50)], keep=3)
    registry.append_log("no-such-job", "ignored")

    tail = registry.get(job.id).log_tail  # type: ignore[union-attr]
    assert tail[:2] == ["line 3", "line 4"] and len(tail) == 3
    assert len(tail[2]) == MAX_LOG_LINE and tail[2].endswith("…")
    assert registry.get("no-such-job") is None


def test_finish_is_final(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    registry.start(job.id)
    registry.update_progress(job.id, message="12 files downloaded")

    assert registry.finish(job.id, ProcessingStatus.COMPLETE, result={"files": 12})
    assert not registry.finish(job.id, ProcessingStatus.FAILED, "failed", error="late")
    with pytest.raises(ValueError, match="terminal"):
        registry.finish(job.id, ProcessingStatus.IN_PROGRESS)

    done = registry.get(job.id)
    assert done is not None and done.status is ProcessingStatus.COMPLETE and done.error is None
    assert done.result == {"files": 12} and done.message == "12 files downloaded"
    assert done.finished_at is not None and done.finished_at.tzinfo is UTC
    assert not done.is_active and done.percent == 100.0


def test_failure_error_is_stored_as_one_line(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    registry.finish(job.id, ProcessingStatus.FAILED, "failed", error="bucket gone\n  retry later")
    assert registry.get(job.id).error == "bucket gone retry later"  # type: ignore[union-attr]


def test_cancelling_a_pending_job_ends_it_at_once(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)

    assert registry.request_cancel(job.id)
    cancelled = registry.get(job.id)
    assert cancelled is not None and cancelled.status is ProcessingStatus.CANCELLED
    assert cancelled.cancel_requested and cancelled.message == CANCELLED_BEFORE_START
    assert not registry.start(job.id)  # a runner picking it up later must skip it
    assert registry.create(JobKind.DOWNLOAD, RUN)[1]  # the slot is free again


def test_cancelling_a_running_job_raises_the_flag(registry: JobRegistry) -> None:
    job, _ = registry.create(JobKind.DOWNLOAD, RUN)
    registry.start(job.id)
    assert not registry.is_cancel_requested(job.id)

    assert registry.request_cancel(job.id)
    assert registry.is_cancel_requested(job.id)
    running = registry.get(job.id)
    assert running is not None and running.status is ProcessingStatus.IN_PROGRESS and running.cancel_requested

    registry.finish(job.id, ProcessingStatus.CANCELLED, "cancelled")
    assert not registry.request_cancel(job.id)
    assert not registry.request_cancel("no-such-job")
    assert not registry.is_cancel_requested("no-such-job")


def test_mark_interrupted_fails_only_jobs_with_stale_heartbeats(registry: JobRegistry) -> None:
    stale, _ = registry.create(JobKind.DOWNLOAD, "stale")
    registry.start(stale.id)
    stale_pending, _ = registry.create(JobKind.DOWNLOAD, "stale-pending")  # queued in a runner that died
    alive, _ = registry.create(JobKind.DOWNLOAD, "alive")
    registry.start(alive.id)
    queued, _ = registry.create(JobKind.DOWNLOAD, "queued", heartbeat=False)  # waits in Celery's queue
    time.sleep(0.15)
    assert registry.heartbeat(alive.id)

    assert sorted(registry.mark_interrupted(timeout_s=0.1)) == sorted([stale.id, stale_pending.id])
    assert registry.mark_interrupted(timeout_s=0.1) == []

    for job_id in (stale.id, stale_pending.id):
        failed = registry.get(job_id)
        assert failed is not None and failed.status is ProcessingStatus.FAILED
        assert failed.error == INTERRUPTED_ERROR and failed.finished_at is not None
    assert registry.get(alive.id).status is ProcessingStatus.IN_PROGRESS  # type: ignore[union-attr]
    assert registry.get(queued.id).status is ProcessingStatus.PENDING  # type: ignore[union-attr]
    assert not registry.heartbeat(stale.id)
    assert registry.create(JobKind.DOWNLOAD, "stale")[1]


def test_purge_deletes_only_old_finished_jobs(registry: JobRegistry) -> None:
    old, _ = registry.create(JobKind.DOWNLOAD, "old")
    registry.append_log(old.id, "some line")
    registry.finish(old.id, ProcessingStatus.COMPLETE)
    active, _ = registry.create(JobKind.DOWNLOAD, "active")
    time.sleep(0.1)
    recent, _ = registry.create(JobKind.DOWNLOAD, "recent")
    registry.finish(recent.id, ProcessingStatus.FAILED, error="x")

    assert registry.purge(older_than_s=3600) == 0
    assert registry.purge(older_than_s=0.05) == 1
    assert registry.get(old.id) is None
    assert {job.id for job in registry.list()} == {active.id, recent.id}


def test_sqlite_store_uses_wal_and_a_partial_unique_index(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    SqliteJobRegistry(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_one_active'").fetchone()[0]
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "UNIQUE" in sql and "WHERE status IN" in sql
    assert {"jobs_kind_target_status", "jobs_created_at"} <= indexes


def test_sqlite_connections_of_finished_threads_are_released(tmp_path: Path) -> None:
    registry = SqliteJobRegistry(tmp_path / "jobs.sqlite3")
    threads = [threading.Thread(target=registry.get, args=("x",)) for _ in range(20)]
    for thread in threads:
        thread.start()
        thread.join()
    gc.collect()

    assert len(registry._connections) <= 2  # this thread's, plus at most one not yet collected
    registry.close()


def test_an_instance_used_before_a_fork_works_in_the_child_and_the_parent(registry: JobRegistry) -> None:
    parent_job, _ = registry.create(JobKind.DOWNLOAD, "from-parent")
    results = FORK.Queue()
    child = FORK.Process(target=create_with_inherited, args=(registry, results))
    child.start()
    child_job_id, created = results.get(timeout=10)
    child.join(timeout=10)

    assert child.exitcode == 0 and created
    assert registry.get(child_job_id) is not None and registry.get(parent_job.id) is not None
    assert registry.update_progress(parent_job.id, files_done=1)


def test_open_registry_picks_sqlite_unless_given_redis(tmp_path: Path) -> None:
    sqlite_store = open_registry(tmp_path / "data")
    redis_store = open_registry(tmp_path, "redis://127.0.0.1:1/0")  # no connection until first use
    from_env = registry_from_env({"BAGBOARD_DATA_ROOT": str(tmp_path), "BAGBOARD_JOBS_REDIS_PREFIX": "x:"})
    from_cache_env = registry_from_env({"BAGBOARD_CACHE_REDIS_URL": "redis://127.0.0.1:1/0"})

    assert isinstance(sqlite_store, SqliteJobRegistry) and sqlite_store.path == tmp_path / "data" / "jobs.sqlite3"
    assert isinstance(redis_store, RedisJobRegistry) and redis_store.prefix == "bagboard:jobs:"
    assert isinstance(from_env, SqliteJobRegistry) and from_env.path == tmp_path / "jobs.sqlite3"
    assert isinstance(from_cache_env, RedisJobRegistry)
    for store in (sqlite_store, redis_store, from_env, from_cache_env):
        store.close()
