"""Track lifetime distributions of the two sides, overlaid."""

from __future__ import annotations

from typing import Any

from pages.compare.charts._bins import overlaid_histograms
from src.models.fleet import RunComparison

TITLE = "Track lifetimes"


def build(comparison: RunComparison) -> dict[str, Any] | None:
    """Two normalised histograms of how long tracks lived."""
    return overlaid_histograms(comparison, "track_lifetimes_s", bins=40, title=TITLE, unit="s", share_of="tracks")
