"""Raw-bag versus ML-label coverage over time."""

from __future__ import annotations

from dataclasses import dataclass, field
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

    def __post_init__(self) -> None:
        lengths = {
            "timestamps": len(self.timestamps),
            "raw_bags": len(self.raw_bags),
            "ml_samples": len(self.ml_samples),
            "gap_percentages": len(self.gap_percentages),
        }
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
        )
