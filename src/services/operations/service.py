"""CloudOperationService: raw downloads, ML uploads and dataset fetches, each atomic on disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from src.jobs.base import JobContext, JobError, NullContext
from src.models import DownloadJob, RunCoordinate
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.operations import dataset, raw, upload
from src.services.operations.plans import (
    CONFLICT_RESOLUTIONS,
    DatasetPlan,
    DatasetResult,
    DownloadPlan,
    UploadPlan,
    UploadResult,
)
from src.services.operations.transfer import SlicePolicy
from src.storage.base import Bucket

DEFAULT_EXPECTED_SAMPLES_PER_BAG = 17


class CloudOperationService:
    """Move data between the buckets and data_root; every execute_* re-plans and never trusts an old plan.

    Roles are checked by the job runner, not here. Failures fit for users raise JobError (one line);
    a cancel raises JobCancelled from the context. Nothing is ever written outside data_root.
    """

    def __init__(
        self,
        inventory: CloudInventoryService,
        local: LocalStateService,
        raw_bucket: Bucket,
        ml_bucket: Bucket,
        data_root: Path,
        *,
        max_workers: int = 16,
        slicing: SlicePolicy | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.inventory = inventory
        self.local = local
        self.raw_bucket = raw_bucket
        self.ml_bucket = ml_bucket
        self.data_root = Path(data_root)
        self.max_workers = max_workers
        self.slicing = slicing or SlicePolicy()  # large objects come as concurrent ranged slices

    # -- raw download ------------------------------------------------------------------------------

    def plan_raw_download(self, coord: RunCoordinate | str, conflict_resolution: str = "skip") -> DownloadPlan:
        """Return what downloading the run's raw objects would do, per file (a dry run)."""
        download_plan, _items = raw.plan(self, _coordinate(coord), _policy(conflict_resolution))
        return download_plan

    def execute_raw_download(
        self, coord: RunCoordinate | str, conflict_resolution: str = "skip", ctx: JobContext | None = None
    ) -> DownloadJob:
        """Download the run into data_root/raw/{coord}: parallel, checksum-verified, atomic per file."""
        return raw.execute(self, _coordinate(coord), _policy(conflict_resolution), ctx or NullContext())

    # -- ML upload ---------------------------------------------------------------------------------

    def plan_ml_upload(self, export_id: str, conflict_resolution: str = "skip") -> UploadPlan:
        """Return what uploading the export would do, per file (a dry run)."""
        upload_plan, _items = upload.plan(self, export_id, _policy(conflict_resolution))
        return upload_plan

    def execute_ml_upload(
        self, export_id: str, conflict_resolution: str = "skip", ctx: JobContext | None = None
    ) -> UploadResult:
        """Upload the export without overwriting unless asked; mark it uploaded when complete."""
        return upload.execute(self, export_id, _policy(conflict_resolution), ctx or NullContext())

    # -- dataset fetch -----------------------------------------------------------------------------

    def plan_dataset_fetch(
        self,
        dataset_name: str,
        filters: Mapping[str, str | None] | None,
        *,
        split: float | None = None,
        expected_samples_per_bag: int = DEFAULT_EXPECTED_SAMPLES_PER_BAG,
    ) -> DatasetPlan:
        """Return the files, runs and coverage a dataset fetch would produce (a dry run)."""
        dataset_plan, _items = dataset.plan(self, dataset_name, filters, split, expected_samples_per_bag)
        return dataset_plan

    def execute_dataset_fetch(
        self,
        dataset_name: str,
        filters: Mapping[str, str | None] | None,
        *,
        split: float | None = None,
        created_by: str = "",
        ctx: JobContext | None = None,
        expected_samples_per_bag: int = DEFAULT_EXPECTED_SAMPLES_PER_BAG,
    ) -> DatasetResult:
        """Fetch the selection's samples and labels into data_root/ml/datasets/{name} with a manifest."""
        return dataset.execute(
            self,
            dataset_name,
            filters,
            split=split,
            created_by=created_by,
            expected_samples_per_bag=expected_samples_per_bag,
            ctx=ctx or NullContext(),
        )


def _coordinate(coord: RunCoordinate | str) -> RunCoordinate:
    """Accept a RunCoordinate or its path string; raise JobError for an invalid one."""
    if isinstance(coord, RunCoordinate):
        return coord
    try:
        return RunCoordinate.from_path(coord)
    except ValueError as err:
        raise JobError(f"invalid coordinate {coord!r}: {err}") from None


def _policy(conflict_resolution: str) -> str:
    """Return a valid conflict resolution or raise JobError."""
    if conflict_resolution not in CONFLICT_RESOLUTIONS:
        raise JobError(f"unknown conflict resolution {conflict_resolution!r}; use {' or '.join(CONFLICT_RESOLUTIONS)}")
    return conflict_resolution
