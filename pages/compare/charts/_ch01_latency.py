"""Detection latency distributions of the two sides, overlaid."""

from __future__ import annotations

from typing import Any

from pages.compare.charts._bins import overlaid_histograms
from src.models.fleet import RunComparison

TITLE = "Detection latency distribution"


def build(comparison: RunComparison) -> dict[str, Any] | None:
    """Two normalised histograms on one axis (each side's share of its detection messages)."""
    return overlaid_histograms(comparison, "latency_ms", bins=60, title=TITLE, unit="ms", share_of="messages")
