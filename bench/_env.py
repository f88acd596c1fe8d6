"""The settings every benchmark app runs with, so the benchmarks measure the same configuration."""

from __future__ import annotations

from pathlib import Path


def bagboard_env(data_root: Path) -> dict[str, str]:
    """Return the BAGBOARD_* variables of a benchmark app on data_root (no inventory refresh on start)."""
    return {
        "BAGBOARD_ENV": "test",
        "BAGBOARD_SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "BAGBOARD_DATA_ROOT": str(data_root),
        "BAGBOARD_CACHE_TYPE": "FileSystemCache",
        "BAGBOARD_INVENTORY_REFRESH_ON_START": "false",
        "BAGBOARD_LOG_LEVEL": "WARNING",
    }
