"""Cloud operations: download a run's raw bags, upload an ML export, fetch a dataset.

Each operation has a dry-run plan_* and an execute_* that re-plans, transfers in parallel with
checksum verification, and publishes atomically (hidden temp names, then rename) inside data_root.
"""

from __future__ import annotations

from src.services.operations.dataset import split_of, validate_dataset_name
from src.services.operations.plans import (
    CONFLICT_RESOLUTIONS,
    DatasetPlan,
    DatasetResult,
    DatasetRun,
    DownloadPlan,
    FileAction,
    UploadPlan,
    UploadResult,
)
from src.services.operations.service import CloudOperationService

__all__ = [
    "CONFLICT_RESOLUTIONS",
    "CloudOperationService",
    "DatasetPlan",
    "DatasetResult",
    "DatasetRun",
    "DownloadPlan",
    "FileAction",
    "UploadPlan",
    "UploadResult",
    "split_of",
    "validate_dataset_name",
]
