"""The service container: one place that builds every service from the settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cachelib import BaseCache

from src.analytics import AnalyticsService
from src.analytics.moment_store import MomentsService, moment_settings
from src.config import Settings
from src.core.logging import get_logger
from src.jobs.registry import open_registry
from src.jobs.runner import JobRunner
from src.jobs.worker import heartbeat_settings
from src.services.batch import BatchService
from src.services.data_state import DataStateService
from src.services.extraction import ExtractionService, ExtractorSettings
from src.services.fleet import FleetService
from src.services.frames import FrameService
from src.services.inventory import CloudInventoryService
from src.services.inventory_refresh import RefreshProcess
from src.services.job_handlers import bind_handlers
from src.services.local_state import LocalStateService
from src.services.operations import CloudOperationService
from src.services.operations.transfer import MIB, SlicePolicy
from src.services.run_view import RunViewService
from src.storage import StorageError, open_bucket

log = get_logger("bagboard.services")


@dataclass
class ServiceContainer:
    """Hold the services of one app instance (no fancy DI)."""

    settings: Settings
    shared_cache: BaseCache
    inventory: CloudInventoryService
    local_state: LocalStateService
    data_state: DataStateService
    operations: CloudOperationService
    extraction: ExtractionService
    analytics: AnalyticsService
    run_view: RunViewService
    frames: FrameService
    moments: MomentsService
    fleet: FleetService
    jobs: JobRunner | None = None
    batches: BatchService | None = None

    @classmethod
    def initialize(cls, settings: Settings, shared_cache: BaseCache, *, with_runner: bool = True) -> ServiceContainer:
        """Build every service (nothing here touches the network); a Celery worker passes with_runner=False."""
        raw_bucket, ml_bucket = (
            open_bucket(url, **settings.bucket_options(url)) for url in (settings.raw_bucket, settings.ml_bucket)
        )
        inventory = CloudInventoryService(
            raw_bucket=raw_bucket,
            ml_bucket=ml_bucket,
            snapshot_path=settings.snapshot_path,
            shared=shared_cache,
            refresh_on_query=False,
            # Listings and builds run in a child process: the worker keeps only the mapped snapshot.
            refresh_process=RefreshProcess(
                raw_url=settings.raw_bucket,
                ml_url=settings.ml_bucket,
                gcs_retry=(
                    settings.gcs_retry_deadline,
                    settings.gcs_retry_initial,
                    settings.gcs_retry_maximum,
                    settings.gcs_retry_multiplier,
                ),
            ),
        )
        local_state = LocalStateService(settings.data_root)
        data_state = DataStateService(inventory, local_state, settings.expected_samples_per_bag)
        analytics = AnalyticsService(local_state)
        frames = FrameService(local_state)
        moments = MomentsService(analytics, moment_settings(settings))
        services = cls(
            settings=settings,
            shared_cache=shared_cache,
            inventory=inventory,
            local_state=local_state,
            data_state=data_state,
            operations=CloudOperationService(
                inventory, local_state, raw_bucket, ml_bucket, settings.data_root, slicing=slice_policy(settings)
            ),
            extraction=ExtractionService(
                local_state,
                ExtractorSettings(
                    runner=settings.extractor_runner,
                    image=settings.extractor_image,
                    memory=settings.extractor_memory,
                    cpus=settings.extractor_cpus,
                    timeout_s=settings.extractor_timeout,
                ),
            ),
            analytics=analytics,
            run_view=RunViewService(data_state, analytics, frames, moments),
            frames=frames,
            moments=moments,
            fleet=FleetService(analytics, data_state, inventory.version),
        )
        if with_runner:
            redis_url = settings.cache_redis_url if settings.cache_type == "RedisCache" else None
            # From BAGBOARD_JOB_HEARTBEAT_INTERVAL / _TIMEOUT, which Celery workers read too.
            interval, timeout = heartbeat_settings()
            services.jobs = JobRunner(
                open_registry(settings.data_root, redis_url),
                broker_url=settings.celery_broker_url or None,
                heartbeat_interval=interval,
                heartbeat_timeout=timeout,
            )
            bind_handlers(services.jobs, services)
            services.batches = BatchService(
                data_state, local_state, analytics, services.jobs, concurrency=settings.batch_concurrency
            )
        return services

    def warm_up(self) -> threading.Thread | None:
        """Load the inventory snapshot; if it is missing or unreadable, rebuild it in the background."""
        if self.inventory.get_full_inventory(build_if_missing=False) is not None:
            return None
        if not self.settings.inventory_refresh_on_start:
            return None
        thread = threading.Thread(target=self._rebuild_inventory, name="inventory-rebuild", daemon=True)
        thread.start()
        return thread

    def _rebuild_inventory(self) -> None:
        try:
            # The cross-worker refresh lock lets one worker list while the others load its snapshot.
            self.inventory.refresh_if_idle()
        except StorageError as exc:
            log.warning("inventory_rebuild_on_start_failed", error=str(exc))

    def health_facts(self) -> dict[str, Any]:
        """Return cheap facts for /healthz (no bucket calls)."""
        info = self.inventory.get_cache_info()
        return {
            "inventory_age_seconds": info.get("age_seconds"),
            "inventory_runs": info.get("runs"),
            "inventory_stale_since": info.get("stale_since"),
        }


def slice_policy(settings: Settings) -> SlicePolicy:
    """Return the sliced-download policy of the settings."""
    return SlicePolicy(
        threshold=settings.sliced_download_threshold_mb * MIB,
        slice_size=settings.sliced_download_slice_mb * MIB,
        workers=settings.sliced_download_workers,
    )
