"""The app's job handlers: each runs one atomic operation of a service inside a job."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from src.jobs.base import JobContext, JobError, JobKind
from src.models import ProcessingStatus, RunCoordinate
from src.storage import StorageError

if TYPE_CHECKING:
    from src.services.container import ServiceContainer


def bind_handlers(target: Any, services: ServiceContainer) -> None:
    """Register every operation on target (a JobRunner or a Celery worker's handler set)."""

    def download(ctx: JobContext, /, coordinate: str, conflict: str = "skip", **_: Any) -> dict[str, Any]:
        job = services.operations.execute_raw_download(RunCoordinate.from_path(coordinate), conflict, ctx)
        if job.status is ProcessingStatus.FAILED:
            raise JobError(job.error_message or "download failed")
        return {"files": job.files_downloaded, "bytes": job.bytes_downloaded, "status": job.status.value}

    def upload(ctx: JobContext, /, export_id: str, conflict: str = "skip", **_: Any) -> dict[str, Any]:
        return services.operations.execute_ml_upload(export_id, conflict, ctx).to_dict()

    def dataset(
        ctx: JobContext,
        /,
        name: str,
        filters: dict[str, str],
        split: float | None = None,
        created_by: str = "",
        **_: Any,
    ) -> dict[str, Any]:
        return services.operations.execute_dataset_fetch(
            name, filters, split=split, created_by=created_by, ctx=ctx
        ).to_dict()

    def refresh(ctx: JobContext, /, prefixes: list[str] | None = None, **_: Any) -> dict[str, Any]:
        def progress(message: str, objects: int) -> None:
            ctx.progress(message=f"{message} ({objects:,} objects)")

        try:
            # In a child process (see RefreshProcess): this worker never holds the listing or the build.
            inventory = services.inventory.refresh_inventory(progress, prefixes or None)
        except ValueError as exc:
            raise JobError(f"cannot refresh {prefixes}: {exc}") from None
        except StorageError as exc:
            raise JobError(f"inventory refresh failed: {exc}") from None
        return {"runs": inventory.run_count, "objects": inventory.object_count, "prefixes": prefixes or []}

    def extract(ctx: JobContext, /, coordinate: str, **_: Any) -> dict[str, Any]:
        coord = RunCoordinate.from_path(coordinate)
        # The outputs are about to change: the run's fleet KPIs go stale with its analysis.
        services.analytics.invalidate(coord)
        job = services.extraction.execute_extraction(coord, ctx)
        return {"bags": job.bags_processed, "frames": job.frames_extracted}

    def analyze(ctx: JobContext, /, coordinate: str, **_: Any) -> dict[str, Any]:
        coord = RunCoordinate.from_path(coordinate)
        if not services.analytics.check_analysis_possible(coord):
            raise JobError(f"{coordinate} is not extracted yet: extract it first")
        ctx.progress(files_done=0, files_total=2, message="computing metrics")
        analysis = services.analytics.analyze_run(coord, force_refresh=True, with_plots=False)
        if analysis.error_message:
            raise JobError(analysis.error_message)
        ctx.progress(files_done=1, files_total=2, message="finding moments")
        services.moments.get_moments(coord, refresh=True)
        ctx.progress(files_done=2, files_total=2, message="done")
        return analysis.metrics.to_summary() if analysis.metrics else {}

    target.register_handler(JobKind.DOWNLOAD, download)
    target.register_handler(JobKind.EXTRACT, extract)
    target.register_handler(JobKind.ANALYZE, analyze)
    target.register_handler(JobKind.UPLOAD, upload)
    target.register_handler(JobKind.DATASET, dataset)
    target.register_handler(JobKind.INVENTORY_REFRESH, refresh)
