"""Raw-bag versus ML-label coverage over time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from src.models._serde import dataclass_to_dict


@dataclass
class TemporalData:
    """Hold per-timestamp raw bag counts, ML sample counts and the labelling gap."""

    timestamps: list[str]
    raw_bags: list[int]
    ml_samples: list[int]
    gap_percentages: list[float]
    expected_samples_per_bag: int
    # Parsed timestamps for plotting on a real time axis; None where a name does not parse.
    parsed_times: list[datetime | None] = field(default_factory=list)
    # "timestamp" (one point per timestamp) or, for very long selections, "hour" | "day" | "week" | "month".
    bucket: str = "timestamp"
    # Timestamps left out of a bucketed series because their names are not dates.
    unplaced: int = 0

    def __post_init__(self) -> None:
        lengths = {
            "timestamps": len(self.timestamps),
            "raw_bags": len(self.raw_bags),
            "ml_samples": len(self.ml_samples),
            "gap_percentages": len(self.gap_percentages),
        }
        if self.parsed_times:
            lengths["parsed_times"] = len(self.parsed_times)
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{name}={length}" for name, length in lengths.items())
            raise ValueError(f"TemporalData lists must have equal lengths, got {detail}")
        if self.expected_samples_per_bag <= 0:
            raise ValueError("expected_samples_per_bag must be positive")

    @staticmethod
    def gap_percent(bags: int, samples: int, expected: int) -> float:
        """Return the share of expected samples that are missing, in percent (0 to 100)."""
        if bags < 0 or samples < 0:
            raise ValueError("bags and samples must not be negative")
        if expected <= 0:
            raise ValueError("expected samples per bag must be positive")
        if bags == 0:
            return 0.0
        if samples == 0:
            return 100.0
        return max(0.0, 1 - samples / (bags * expected)) * 100

    def to_frame(self) -> pd.DataFrame:
        """Return one row per timestamp with columns timestamp, raw_bags, ml_samples, gap_pct."""
        return pd.DataFrame(
            {
                "timestamp": pd.Series(self.timestamps, dtype=object),
                "raw_bags": pd.Series(self.raw_bags, dtype="int64"),
                "ml_samples": pd.Series(self.ml_samples, dtype="int64"),
                "gap_pct": pd.Series(self.gap_percentages, dtype="float64"),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalData:
        """Build from the output of to_dict."""
        return cls(
            timestamps=[str(t) for t in data["timestamps"]],
            raw_bags=[int(n) for n in data["raw_bags"]],
            ml_samples=[int(n) for n in data["ml_samples"]],
            gap_percentages=[float(g) for g in data["gap_percentages"]],
            expected_samples_per_bag=int(data["expected_samples_per_bag"]),
            parsed_times=[datetime.fromisoformat(t) if t else None for t in data.get("parsed_times") or []],
            bucket=str(data.get("bucket", "timestamp")),
            unplaced=int(data.get("unplaced", 0)),
        )


@dataclass
class CoverageStatistics:
    """Summarise coverage; under_labeled_timestamps holds (timestamp, gap_pct, raw_bags, ml_samples)."""

    total_timestamps: int
    total_raw_bags: int
    total_ml_samples: int
    overall_coverage_pct: float
    average_gap_pct: float
    under_labeled_count: int
    under_labeled_timestamps: list[tuple[str, float, int, int]] = field(default_factory=list)
    # The run coordinate (path string) of each under-labelled entry, in the same order.
    under_labeled_coordinates: list[str] = field(default_factory=list)
    # Runs that have ML samples but no raw bags: (coordinate path, samples). A data-quality finding.
    samples_without_bags: list[tuple[str, int]] = field(default_factory=list)
    threshold_pct: float = 50.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (the tuples become lists)."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoverageStatistics:
        """Build from the output of to_dict."""
        return cls(
            total_timestamps=int(data["total_timestamps"]),
            total_raw_bags=int(data["total_raw_bags"]),
            total_ml_samples=int(data["total_ml_samples"]),
            overall_coverage_pct=float(data["overall_coverage_pct"]),
            average_gap_pct=float(data["average_gap_pct"]),
            under_labeled_count=int(data["under_labeled_count"]),
            under_labeled_timestamps=[
                (str(ts), float(gap), int(bags), int(samples))
                for ts, gap, bags, samples in data.get("under_labeled_timestamps") or []
            ],
            under_labeled_coordinates=[str(c) for c in data.get("under_labeled_coordinates") or []],
            samples_without_bags=[(str(c), int(n)) for c, n in data.get("samples_without_bags") or []],
            threshold_pct=float(data.get("threshold_pct", 50.0)),
        )


@dataclass
class CoverageBreakdown:
    """Coverage per child of the next hierarchy level, and per child and day (for a heatmap)."""

    level: str
    children: list[str]
    runs: list[int]
    raw_bags: list[int]
    ml_samples: list[int]
    gap_percentages: list[float]
    under_labeled_counts: list[int]
    days: list[str] = field(default_factory=list)  # ISO dates, columns of the heatmap
    day_gaps: list[list[float | None]] = field(default_factory=list)  # one row per child, None = no bags
    period: str = "day"  # the heatmap's column width: day, or week / month for long selections

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclass_to_dict(self)


@dataclass
class CoverageReport:
    """Everything the coverage view shows for one selection: one service call, one model."""

    filters: dict[str, str]
    expected_samples_per_bag: int
    threshold_pct: float
    temporal: TemporalData
    statistics: CoverageStatistics
    breakdown: CoverageBreakdown | None
    inventory_available: bool
    inventory_age_seconds: float | None = None
    stale_since: str | None = None
    stale_reason: str | None = None

    @property
    def is_full_selection(self) -> bool:
        """Tell whether all five filter levels are chosen (each timestamp is then one run)."""
        return self.breakdown is None
