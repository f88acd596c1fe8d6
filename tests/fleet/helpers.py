"""Hand-built per-run KPI tables and reports whose roll-ups can be checked by hand."""

from __future__ import annotations

from typing import Any

import pandas as pd

from src.models.fleet import FleetReport, RunComparison, RunProfile
from src.services import fleet_stats
from src.services.fleet_table import table_from_docs

BASE = {"duration_s": 120.0, "frame_drops": 2, "tracks": 10, "mean_fps": 10.0, "mean_track_lifetime_s": 2.0}


def doc(**values: Any) -> dict[str, Any]:
    """Return a KPI document: BASE overridden by values, latencies 50 / 80 / 100 ms unless given."""
    out = {"latency_p50_ms": 50.0, "latency_p95_ms": 80.0, "latency_p99_ms": 100.0, **BASE, **values}
    out.setdefault("started_at", 1_715_000_000.0)  # 2024-05-06 (a Monday) 12:53 UTC
    return out


def table(rows: list[tuple[str, dict[str, Any]]]) -> pd.DataFrame:
    """Return the gathered table of (coordinate path, KPI document) pairs."""
    return table_from_docs([(tuple(path.split("/")), values) for path, values in rows])


# Field f1 has 2 runs, field f2 has 3 (one slow): computed by hand in tests/fleet/test_fleet_service.py.
TWO_FIELDS = [
    (
        "c/r/f1/t/l/2024-05-06T10-00-00",
        doc(mean_fps=10.0, latency_p95_ms=80.0, duration_s=60.0, frame_drops=1, tracks=6),
    ),
    (
        "c/r/f1/t/l/2024-05-07T10-00-00",
        doc(
            mean_fps=20.0,
            latency_p95_ms=90.0,
            duration_s=120.0,
            frame_drops=2,
            tracks=12,
            mean_track_lifetime_s=4.0,
            started_at=1_715_086_400.0,
        ),
    ),
    ("c/r/f2/t/l/2024-05-13T10-00-00", doc(mean_fps=12.0, latency_p95_ms=70.0, started_at=1_715_600_000.0)),
    ("c/r/f2/t/l/2024-05-14T10-00-00", doc(mean_fps=11.0, latency_p95_ms=75.0, started_at=1_715_686_400.0)),
    ("c/r/f2/t/l/2024-05-15T10-00-00", doc(mean_fps=13.0, latency_p95_ms=400.0, started_at=1_715_772_800.0)),
]


def fleet_fixture() -> FleetReport:
    """Return a report over TWO_FIELDS under c/r, in which every fleet chart has something to draw."""
    runs = table(TWO_FIELDS)
    by_child = fleet_stats.rollup(runs, runs["fieldid"])
    by_child.attrs["overall"] = fleet_stats.overall(runs)
    periods = fleet_stats.period_starts(runs["started_at"], "day")
    return FleetReport(
        filters={"cid": "c", "regionid": "r"},
        level="fieldid",
        period="day",
        threshold=3.5,
        runs=runs,
        by_child=by_child,
        over_time=fleet_stats.rollup(runs, periods),
        outliers=fleet_stats.find_outliers(runs, runs["fieldid"], 3.5),
        total_runs=7,
        analysed_runs=len(runs),
    )


def comparison_fixture() -> RunComparison:
    """Return two sides with KPIs and distributions."""
    a = RunProfile(
        "run A",
        ["c/r/f/t/l/a"],
        {"mean_fps": 10.0, "latency_p95_ms": 80.0},
        [10.0, 20.0, 30.0],
        [9.0, 10.0, None, 11.0],
        [0.5, 1.0, 2.0],
    )
    b = RunProfile(
        "run B",
        ["c/r/f/t/l/b"],
        {"mean_fps": 12.0, "latency_p95_ms": 60.0},
        [15.0, 18.0],
        [12.0, 12.5, 11.0, 12.0],
        [1.5, 3.0],
    )
    return RunComparison(a, b)
