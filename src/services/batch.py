"""Analyse a selection: one batch drives download → extract → analyse for many runs, each step its own job.

A batch is one registry job (kind ``batch``: its progress bar, its cancel) whose handler queues the step jobs of
its runs, at most ``concurrency`` runs at a time, on the same job runner as everything else (the embedded pool or
Celery workers). Step jobs carry ``params["batch"]`` so job lists can fold them into their batch; they are the
ordinary download / extract / analyze jobs, so one already running for a run (from the run view, or another batch)
is followed rather than started twice. The batch's runs and their states live in
``{data_root}/batches/{id}.json``, written atomically, where every worker reads them.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from src.analytics import AnalyticsService
from src.analytics.kpis import atomic_write_json
from src.auth.roles import Role, check_role
from src.core.logging import get_logger
from src.jobs.base import Job, JobCancelled, JobContext, JobError, JobKind
from src.jobs.runner import HandlerSet, JobRunner
from src.jobs.worker import RETENTION_S, heartbeat_settings
from src.models import ProcessingStatus, RunCoordinate
from src.models.fleet import BatchRecord, BatchRun, BatchRunState
from src.services.data_state import DataStateService, clean_filters
from src.services.local_state import LocalStateService

log = get_logger("bagboard.batch")
MAX_BATCH_RUNS = 10_000
BATCH_DIR = "batches"
POLL_S = 0.2
SAVE_EVERY_S = 0.5
STOP_WAIT_S = 60.0
_ID = re.compile(r"^[0-9a-f]{32}$")
STEP_STATE = {
    JobKind.DOWNLOAD: BatchRunState.DOWNLOADING,
    JobKind.EXTRACT: BatchRunState.EXTRACTING,
    JobKind.ANALYZE: BatchRunState.ANALYSING,
}
STEP_ORDER = (JobKind.DOWNLOAD, JobKind.EXTRACT, JobKind.ANALYZE)


class BatchError(ValueError):
    """A batch request that cannot be honoured; the message is for the user."""


@dataclass(frozen=True)
class BatchActor:
    """Who a batch's step jobs run as: the operator who started it (their role was checked at start)."""

    name: str

    def can(self, required: Role) -> bool:
        """Allow what an operator may do."""
        return Role.OPERATOR.allows(required)


class BatchStore:
    """Batch records as one JSON file each under a directory every worker sees."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, batch_id: str) -> Path:
        """Return the record's path (the id is checked: it reaches the file system)."""
        if not isinstance(batch_id, str) or not _ID.fullmatch(batch_id):
            raise BatchError("Unknown batch.")
        return self.root / f"{batch_id}.json"

    def save(self, record: BatchRecord) -> None:
        """Write the record atomically."""
        atomic_write_json(self.path(record.batch_id), record.to_dict())

    def load(self, batch_id: str) -> BatchRecord:
        """Read a record, raising BatchError when it does not exist."""
        try:
            return BatchRecord.from_dict(json.loads(self.path(batch_id).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise BatchError("Unknown batch.") from exc

    def prune(self, older_than_s: float) -> int:
        """Delete records not written for older_than_s (their jobs are purged by then too); return how many."""
        cutoff, removed = time.time() - older_than_s, 0
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return 0
        for entry in entries:
            if entry.name.endswith(".json") and entry.stat().st_mtime < cutoff:
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

    def ids(self, limit: int) -> list[str]:
        """Return the newest batch ids first."""
        try:
            entries = [entry for entry in os.scandir(self.root) if entry.name.endswith(".json")]
        except OSError:
            return []
        entries.sort(key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
        return [entry.name[:-5] for entry in entries[:limit] if _ID.fullmatch(entry.name[:-5])]


class BatchService:
    """Plan, start, follow and cancel batches of runs to analyse."""

    def __init__(
        self,
        data_state: DataStateService,
        local: LocalStateService,
        analytics: AnalyticsService,
        jobs: JobRunner,
        *,
        concurrency: int = 2,
        max_batches: int = 2,
        poll_s: float = POLL_S,
    ) -> None:
        self.data_state = data_state
        self.local = local
        self.analytics = analytics
        self.jobs = jobs
        self.concurrency = max(1, int(concurrency))
        self.max_batches = max_batches
        self.poll_s = poll_s
        self.store = BatchStore(local.data_root / BATCH_DIR)
        self._driver: JobRunner | None = None

    @property
    def driver(self) -> JobRunner:
        """Return the runner of batch jobs: its own small pool, so batches never take the step jobs' threads."""
        if self._driver is None:
            interval, timeout = heartbeat_settings()
            self._driver = JobRunner(
                self.jobs.registry,
                HandlerSet({JobKind.BATCH: self._drive}),
                max_workers=self.max_batches,
                heartbeat_interval=interval,
                heartbeat_timeout=timeout,
            )
        return self._driver

    # -- planning and starting ---------------------------------------------------------------------

    def plan(self, filters: dict[str, str] | None, coordinates: list[str] | None = None) -> list[str]:
        """Return the runs a batch would take: those with raw bags under the filter (or ticked) not yet analysed."""
        if coordinates:
            wanted = {RunCoordinate.from_path(str(path)).to_path_str() for path in coordinates}
            rows = self.data_state.get_state_overview_data([RunCoordinate.from_path(p) for p in sorted(wanted)])
        else:
            rows = self.data_state.get_state_summary(clean_filters(filters)).rows
        return [row["coordinate"] for row in rows if row["cloud_bags"] > 0 and not row["analyzed"]]

    def start(
        self,
        actor: Any,
        filters: dict[str, str] | None = None,
        coordinates: list[str] | None = None,
        *,
        concurrency: int | None = None,
    ) -> BatchRecord:
        """Start a batch for actor (an operator) over the filter or the ticked runs; raise BatchError if empty."""
        check_role(actor, Role.OPERATOR, "start a batch")
        cleaned = clean_filters(filters)
        runs = self.plan(cleaned, coordinates)
        if not runs:
            raise BatchError("Nothing to analyse here: no run with raw bags that is not analysed yet.")
        if len(runs) > MAX_BATCH_RUNS:
            raise BatchError(f"{len(runs):,} runs is more than {MAX_BATCH_RUNS:,}: narrow the filter.")
        record = BatchRecord(
            batch_id=uuid.uuid4().hex,
            filters=cleaned,
            created_by=actor.name,
            created_at=time.time(),
            concurrency=max(1, int(concurrency or self.concurrency)),
            runs=[BatchRun(path) for path in runs],
        )
        self.store.prune(RETENTION_S)
        self.store.save(record)
        job = self.driver.submit(JobKind.BATCH, f"batch/{record.batch_id}", {"batch_id": record.batch_id}, actor)
        # No second save here: the driver records its job id itself, and may already have saved progress that a
        # save of this (all queued) copy would overwrite.
        log.info("batch_started", batch_id=record.batch_id, runs=len(runs), by=actor.name, filters=cleaned)
        started = self.status(record.batch_id)
        started.job_id = started.job_id or job.id
        return started

    def status(self, batch_id: str) -> BatchRecord:
        """Return the batch with its runs' states and the driving job's status."""
        record = self.store.load(batch_id)
        job = self.jobs.registry.get(record.job_id) if record.job_id else None
        if job is not None:
            record.status, record.message = job.status.value, job.error or job.message
            if not job.is_active:
                # The driver ended (or died): whatever it had not finished is not running any more.
                for run in record.runs:
                    if not run.state.is_final and job.status is ProcessingStatus.CANCELLED:
                        run.state = BatchRunState.CANCELLED
        return record

    def list(self, limit: int = 20) -> list[BatchRecord]:
        """Return the newest batches with their status."""
        found = []
        for batch_id in self.store.ids(limit):
            try:
                found.append(self.status(batch_id))
            except BatchError:
                continue
        return found

    def cancel(self, batch_id: str, actor: Any) -> bool:
        """Ask a batch to stop (operators only): queued runs are dropped, running steps cancelled between files."""
        check_role(actor, Role.OPERATOR, "cancel a batch")
        record = self.store.load(batch_id)
        accepted = self.jobs.registry.request_cancel(record.job_id) if record.job_id else False
        log.info("batch_cancel_requested", batch_id=batch_id, by=actor.name, accepted=accepted)
        return accepted

    def shutdown(self, wait: bool = False) -> None:
        """Stop the batch driver's pool."""
        driver, self._driver = self._driver, None
        if driver is not None:
            driver.shutdown(wait=wait)

    # -- driving -----------------------------------------------------------------------------------

    def next_step(self, coordinate: str) -> JobKind | None:
        """Return the step a run needs next, or None when it is analysed."""
        coord = RunCoordinate.from_path(coordinate)
        if not self.local.check_raw_downloaded(coord).downloaded:
            return JobKind.DOWNLOAD
        if not self.local.check_extracted(coord).extracted:
            return JobKind.EXTRACT
        if not self.analytics.has_current_analysis(coord):
            return JobKind.ANALYZE
        return None

    def _drive(self, ctx: JobContext, /, batch_id: str, **_: Any) -> dict[str, Any]:
        """Run the batch: keep `concurrency` runs moving through their steps until all are done or cancelled."""
        record = self.store.load(batch_id)
        record.job_id = ctx.job_id  # start() may not have saved it yet
        actor = BatchActor(f"{record.created_by} (batch)")
        pending = deque(i for i, run in enumerate(record.runs) if not run.state.is_final)
        active: dict[int, tuple[JobKind, str]] = {}
        last_save, saved = 0.0, None
        while pending or active:
            try:
                ctx.check_cancelled()
            except JobCancelled:
                self._stop(record, active)
                raise
            while pending and len(active) < record.concurrency:
                index = pending.popleft()
                self._advance(record, index, None, actor, active)
            for index, (kind, job_id) in list(active.items()):
                job = self.jobs.registry.get(job_id)
                if job is None or not job.is_active:
                    self._step_ended(record, index, kind, job, actor, active)
            now = time.monotonic()
            if now - last_save >= SAVE_EVERY_S:
                saved = self._report(record, ctx, saved)
                last_save = now
            if active:
                time.sleep(self.poll_s)
        self._report(record, ctx)
        counts = record.counts()
        if counts[BatchRunState.FAILED] and not counts[BatchRunState.ANALYSED]:
            raise JobError(f"every run failed ({counts[BatchRunState.FAILED]}); see the batch's runs")
        return counts

    def _advance(
        self,
        record: BatchRecord,
        index: int,
        done: JobKind | None,
        actor: BatchActor,
        active: dict[int, tuple[JobKind, str]],
    ) -> None:
        """Submit the run's next step (or mark it analysed); done is the step that just completed."""
        run = record.runs[index]
        active.pop(index, None)
        try:
            step = self.next_step(run.coordinate)
        except (OSError, ValueError) as exc:
            run.state, run.error = BatchRunState.FAILED, str(exc)
            return
        if step is None:
            run.state = BatchRunState.ANALYSED
            return
        if done is not None and STEP_ORDER.index(step) <= STEP_ORDER.index(done):
            run.state, run.error = BatchRunState.FAILED, f"{done.value} finished but the run still needs {step.value}"
            return
        params = {"coordinate": run.coordinate, "batch": record.batch_id}
        job = self.jobs.submit(step, run.coordinate, params, actor)
        if not job.is_active and job.status is not ProcessingStatus.COMPLETE:
            run.state, run.error = BatchRunState.FAILED, job.error or f"{step.value} could not start"
            return
        run.state, run.job_id = STEP_STATE[step], job.id
        active[index] = (step, job.id)

    def _step_ended(
        self,
        record: BatchRecord,
        index: int,
        kind: JobKind,
        job: Job | None,
        actor: BatchActor,
        active: dict[int, tuple[JobKind, str]],
    ) -> None:
        """Move a run on after its step job ended."""
        run = record.runs[index]
        if job is not None and job.status in (ProcessingStatus.COMPLETE, ProcessingStatus.CACHED):
            self._advance(record, index, kind, actor, active)
            return
        active.pop(index, None)
        if job is not None and job.status is ProcessingStatus.CANCELLED:
            run.state, run.error = BatchRunState.CANCELLED, f"{kind.value} was cancelled"
        else:
            run.state = BatchRunState.FAILED
            run.error = (job.error if job else None) or f"{kind.value} failed"

    def _stop(self, record: BatchRecord, active: dict[int, tuple[JobKind, str]]) -> None:
        """Cancel this batch's running steps, wait for them to end, and leave every unfinished run cancelled."""
        ours = []
        for _, job_id in active.values():
            job = self.jobs.registry.get(job_id)
            # A step another user (or batch) started is theirs: it goes on.
            if job is not None and job.params.get("batch") == record.batch_id:
                self.jobs.registry.request_cancel(job_id)
                ours.append(job_id)
        deadline = time.monotonic() + STOP_WAIT_S
        while ours and time.monotonic() < deadline:
            ours = [job_id for job_id in ours if (job := self.jobs.registry.get(job_id)) and job.is_active]
            time.sleep(self.poll_s)
        for run in record.runs:
            if not run.state.is_final:
                analysed = run.state is BatchRunState.ANALYSING and self._analysed(run.coordinate)
                run.state = BatchRunState.ANALYSED if analysed else BatchRunState.CANCELLED
        self.store.save(record)
        log.info("batch_cancelled", batch_id=record.batch_id, counts=record.counts())

    def _analysed(self, coordinate: str) -> bool:
        """Tell whether a run's analysis is current."""
        try:
            return self.analytics.has_current_analysis(RunCoordinate.from_path(coordinate))
        except (OSError, ValueError):
            return False

    def _report(self, record: BatchRecord, ctx: JobContext, saved: tuple | None = None) -> tuple:
        """Report the batch's progress (runs done of all) and save the record unless it is as `saved` left it.

        Every run's move to another step changes the counts, so equal counts mean nothing to write: a batch of
        10,000 runs is a file of over a megabyte, not worth rewriting twice a second while its steps run.
        """
        counts = record.counts()
        state = (record.job_id, tuple(counts.items()))
        if state != saved:
            self.store.save(record)
        running = sum(counts[state.value] for state in STEP_STATE.values())
        ctx.progress(
            files_done=record.finished,
            files_total=len(record.runs),
            message=(
                f"{counts['analysed']} analysed, {running} running, {counts['failed']} failed"
                f" of {len(record.runs)} runs"
            ),
        )
        return state
