"""Run an inventory refresh in the background with progress every worker can read."""

from __future__ import annotations

import threading
import time
from typing import Any

from cachelib import BaseCache

from src.auth.roles import Role, check_role
from src.core.logging import get_logger
from src.services.inventory import CloudInventoryService
from src.storage import StorageError

STATUS_KEY = "inventory:refresh-status"
log = get_logger("bagboard.inventory")


class InventoryRefresher:
    """Start refreshes for admins and report their progress through the shared cache."""

    def __init__(self, inventory: CloudInventoryService, shared: BaseCache) -> None:
        self.inventory = inventory
        self.shared = shared

    def status(self) -> dict[str, Any] | None:
        """Return the latest refresh status (running, done or failed), or None."""
        return self.shared.get(STATUS_KEY)

    def start(self, actor: Any) -> dict[str, Any]:
        """Start a refresh unless one is running; only admins may."""
        check_role(actor, Role.ADMIN, "inventory refresh")
        current = self.status()
        if current and current.get("state") == "running":
            return current
        status = {"state": "running", "message": "starting", "objects": 0, "by": actor.name, "started_at": time.time()}
        self.shared.set(STATUS_KEY, status, timeout=0)
        threading.Thread(target=self._run, args=(status,), name="inventory-refresh", daemon=True).start()
        log.info("inventory_refresh_started", by=actor.name)
        return status

    def _run(self, status: dict[str, Any]) -> None:
        def progress(message: str, objects: int) -> None:
            status.update(message=message, objects=objects)
            self.shared.set(STATUS_KEY, status, timeout=0)

        try:
            inventory = self.inventory.refresh_if_idle(progress)
            if inventory is None:
                status.update(state="done", message="another worker was already refreshing")
            else:
                status.update(state="done", message=f"{inventory.run_count:,} runs", objects=len(inventory.objects))
        except StorageError as exc:
            status.update(state="failed", message=str(exc))
        except Exception as exc:
            log.exception("inventory_refresh_crashed")
            status.update(state="failed", message=f"refresh failed unexpectedly ({type(exc).__name__})")
        status["finished_at"] = time.time()
        self.shared.set(STATUS_KEY, status, timeout=0)
