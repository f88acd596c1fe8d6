"""The service container: one place that builds every service from the settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from cachelib import BaseCache

from src.config import Settings
from src.core.logging import get_logger
from src.services.data_state import DataStateService
from src.services.inventory import CloudInventoryService
from src.services.local_state import LocalStateService
from src.services.refresh import InventoryRefresher
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
    refresher: InventoryRefresher

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
            refresher=InventoryRefresher(inventory, shared_cache),
        )

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
            "inventory_runs": info.get("run_count"),
            "inventory_stale_since": info.get("stale_since"),
        }
