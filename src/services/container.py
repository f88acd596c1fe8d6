"""The service container: one place that builds every service from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cachelib import BaseCache

from src.config import Settings
from src.services.data_state import DataStateService
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.storage import open_bucket


@dataclass
class ServiceContainer:
    """Hold the services of one app instance (no fancy DI)."""

    settings: Settings
    shared_cache: BaseCache
    inventory: CloudInventoryService
    local_state: LocalStateService
    data_state: DataStateService

    @classmethod
    def initialize(cls, settings: Settings, shared_cache: BaseCache) -> ServiceContainer:
        """Build every service; nothing here touches the network."""
        inventory = CloudInventoryService(
            raw_bucket=open_bucket(settings.raw_bucket),
            ml_bucket=open_bucket(settings.ml_bucket),
            snapshot_path=settings.snapshot_path,
            shared=shared_cache,
            refresh_on_query=False,
        )
        local_state = LocalStateService(settings.data_root)
        return cls(
            settings=settings,
            shared_cache=shared_cache,
            inventory=inventory,
            local_state=local_state,
            data_state=DataStateService(inventory, local_state, settings.expected_samples_per_bag),
        )

    def warm_up(self) -> None:
        """Load the inventory snapshot if there is one (never lists the buckets)."""
        self.inventory.get_full_inventory(build_if_missing=False)

    def health_facts(self) -> dict[str, Any]:
        """Return cheap facts for /healthz (no bucket calls)."""
        info = self.inventory.get_cache_info()
        return {
            "inventory_age_seconds": info.get("age_seconds"),
            "inventory_runs": info.get("run_count"),
            "inventory_stale_since": info.get("stale_since"),
        }
