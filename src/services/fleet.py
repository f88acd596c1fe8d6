"""FleetService: roll the gathered KPI table up under a filter (src/services/fleet_table.py); compare two runs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from src.analytics import AnalyticsService
from src.analytics.cache import parameters
from src.core.logging import get_logger
from src.csv_safe import to_safe_csv
from src.models import FILTER_LEVELS, HIERARCHY_LEVELS, RunCoordinate
from src.models.fleet import KPI_NAMES, PERIODS, FleetReport, RunComparison, RunProfile
from src.services import fleet_stats
from src.services.data_state import DataStateService, clean_filters
from src.services.fleet_table import FleetTable, under

log = get_logger("bagboard.fleet")
EXPORT_COLUMNS = ("coordinate", *HIERARCHY_LEVELS, "started_at", "duration_s", "frame_drops", "tracks", *KPI_NAMES)
PROFILE_BINS = 50
MAX_POOLED_RUNS = 20  # "this run vs its lbid": distributions pooled over at most this many runs
THRESHOLD_RANGE = (0.5, 20.0)


class FleetInputError(ValueError):
    """A request the fleet service cannot answer; the message is for the user."""


class FleetService:
    """Answer the fleet view and the comparison from the gathered table; read full analyses only to compare."""

    def __init__(
        self,
        analytics: AnalyticsService,
        data_state: DataStateService,
        inventory_version: Callable[[], Any] = lambda: 0,
    ) -> None:
        self.analytics = analytics
        self.data_state = data_state
        self.inventory_version = inventory_version
        self.table = FleetTable(
            analytics.local.data_root, parameters(analytics.rolling_window_s, analytics.drop_factor)
        )
        self._totals: OrderedDict[tuple, int] = OrderedDict()
        self._totals_lock = threading.Lock()
        self._selections: OrderedDict[tuple, Selection] = OrderedDict()
        self._selections_lock = threading.Lock()

    def version(self) -> tuple[Any, str]:
        """Return what a rendered report depends on: the inventory's version and the newest KPI change."""
        return self.inventory_version(), self.table.version()

    def get_runs(self, filters: dict[str, str] | None) -> pd.DataFrame:
        """Return the per-run KPI rows under the filter."""
        return under(self.table.get(), clean_filters(filters))

    def get_report(
        self, filters: dict[str, str] | None, period: str = "day", threshold: float = fleet_stats.DEFAULT_THRESHOLD
    ) -> FleetReport:
        """Return the roll-ups per child and per period, the outliers and the analysed share under the filter."""
        if period not in PERIODS:
            raise FleetInputError(f"The period must be one of {', '.join(PERIODS)}.")
        if not THRESHOLD_RANGE[0] <= threshold <= THRESHOLD_RANGE[1]:
            raise FleetInputError(
                f"The outlier threshold must be between {THRESHOLD_RANGE[0]:g} and {THRESHOLD_RANGE[1]:g}."
            )
        cleaned = clean_filters(filters)
        selection = self._selection(cleaned)
        return report_of(selection, period, threshold, max(self.total_runs(cleaned), len(selection.runs)))

    def _selection(self, filters: dict[str, str]) -> Selection:
        """Return the selection's roll-up and z-scores, reused while no KPI changed (controls change often)."""
        version, table = self.table.current()
        key = (version, tuple(filters.items()))
        with self._selections_lock:
            if key in self._selections:
                self._selections.move_to_end(key)
                return self._selections[key]
        selection = select(under(table, filters), filters)
        with self._selections_lock:
            self._selections[key] = selection
            while len(self._selections) > 32:
                self._selections.popitem(last=False)
        return selection

    def total_runs(self, filters: dict[str, str]) -> int:
        """Return the runs with raw bags under the filter (per inventory version: a walk otherwise)."""
        key = (self.inventory_version(), tuple(filters.items()))
        with self._totals_lock:
            if key in self._totals:
                self._totals.move_to_end(key)
                return self._totals[key]
        try:
            total = self.data_state.get_state_summary(filters, limit=0).with_cloud_bags
        except (OSError, ValueError) as exc:  # an unreadable inventory: the table alone says what is analysed
            log.info("fleet_total_unknown", error=str(exc))
            total = 0
        with self._totals_lock:
            self._totals[key] = total
            while len(self._totals) > 256:
                self._totals.popitem(last=False)
        return total

    def export_rows(self, filters: dict[str, str] | None) -> pd.DataFrame:
        """Return the per-run KPI rows under the filter, for a CSV."""
        runs = self.get_runs(filters)
        frame = runs[[c for c in EXPORT_COLUMNS if c in runs.columns]].copy()
        frame["started_at"] = frame["started_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        return frame

    def export_csv(self, filters: dict[str, str] | None) -> str:
        """Return the per-run KPI rows under the filter as CSV text that a spreadsheet will not run."""
        return to_safe_csv(self.export_rows(filters))

    # -- compare ---------------------------------------------------------------------------------

    def compare(self, a: str, b: str | None = None) -> RunComparison:
        """Compare run a with run b, or with the median of the other analysed runs of a's lbid when b is None."""
        coord_a = _coordinate(a)
        table = self.table.get()
        row_a = table[table["coordinate"].to_numpy() == coord_a.to_path_str()]
        if row_a.empty:
            raise FleetInputError(f"Run {coord_a} is not analysed: analyse it first.")
        side_a = self._profile(coord_a.timestamp, [coord_a], _kpis(row_a.iloc[0]))
        if b:
            coord_b = _coordinate(b)
            row_b = table[table["coordinate"].to_numpy() == coord_b.to_path_str()]
            if row_b.empty:
                raise FleetInputError(f"Run {coord_b} is not analysed: analyse it first.")
            return RunComparison(side_a, self._profile(coord_b.timestamp, [coord_b], _kpis(row_b.iloc[0])))
        peers = under(table, coord_a.filters())
        peers = peers[peers["coordinate"].to_numpy() != coord_a.to_path_str()]
        if peers.empty:
            raise FleetInputError(f"No other analysed run in lbid {coord_a.lbid} to compare with.")
        median = {name: _number(peers[name].median()) for name in KPI_NAMES}
        coords = [RunCoordinate.from_path(path) for path in peers["coordinate"].tolist()[:MAX_POOLED_RUNS]]
        label = f"median of {len(peers)} run(s) of {coord_a.lbid}"
        return RunComparison(side_a, self._profile(label, coords, median))

    def _profile(self, label: str, coords: list[RunCoordinate], kpis: dict[str, float | None]) -> RunProfile:
        """Return one side with its distributions read from the runs' analyses (pooled over several)."""
        latency: list[np.ndarray] = []
        lifetimes: list[np.ndarray] = []
        profiles: list[np.ndarray] = []
        for coord in coords:
            data = self.analytics.get_cached_data(coord)
            if data is None:
                continue
            series = data.series
            latency.append(series.latency_ms[np.isfinite(series.latency_ms)])
            lifetimes.append(series.track_lifetime_s)
            profiles.append(fps_profile(series.frames.instant_t, series.frames.instant))
        mean_profile = np.nanmean(np.vstack(profiles), axis=0) if profiles else np.array([])
        return RunProfile(
            label=label,
            coordinates=[coord.to_path_str() for coord in coords],
            kpis=kpis,
            latency_ms=np.concatenate(latency).tolist() if latency else [],
            fps_profile=[None if not np.isfinite(v) else float(v) for v in mean_profile],
            track_lifetimes_s=np.concatenate(lifetimes).tolist() if lifetimes else [],
        )


@dataclass
class Selection:
    """What a report needs of one selection whatever the period and threshold: rows, roll-up, z-scores."""

    filters: dict[str, str]
    runs: pd.DataFrame
    level: str
    by_child: pd.DataFrame
    groups: pd.Series
    scores: fleet_stats.ZScores


def select(runs: pd.DataFrame, filters: dict[str, str]) -> Selection:
    """Roll the rows under a (clean) filter up per child and score each run against its group."""
    depth = len(filters)
    level = HIERARCHY_LEVELS[depth]
    runs = runs.reset_index(drop=True)
    columns = fleet_stats.columns_of(runs)
    if runs.empty:
        by_child = fleet_stats.rollup(runs, runs[level])
    else:
        by_child = fleet_stats.rollup_codes(columns, *fleet_stats.codes_of(runs[level]))
    by_child.attrs["overall"] = fleet_stats.overall(columns, len(runs))
    # Outliers are judged within the next level's children; under a full filter, within the lbid.
    groups = runs[FILTER_LEVELS[min(depth, len(FILTER_LEVELS) - 1)]]
    return Selection(filters, runs, level, by_child, groups, fleet_stats.z_scores(runs, groups))


def report_of(selection: Selection, period: str, threshold: float, total_runs: int) -> FleetReport:
    """Return the report of a selection for a period and an outlier threshold."""
    runs = selection.runs
    periods = fleet_stats.period_starts(runs["started_at"], period)
    placed = periods.notna().to_numpy()
    return FleetReport(
        filters=selection.filters,
        level=selection.level,
        period=period,
        threshold=threshold,
        runs=runs,
        by_child=selection.by_child,
        over_time=fleet_stats.rollup(runs[placed], periods[placed]),
        outliers=fleet_stats.outliers_from(runs, selection.groups, selection.scores, threshold),
        total_runs=total_runs,
        analysed_runs=len(runs),
        unplaced=int((~placed).sum()),
    )


def build_report(
    runs: pd.DataFrame, filters: dict[str, str], period: str, threshold: float, total_runs: int
) -> FleetReport:
    """Roll the per-run rows under a (clean) filter up per child and per period, and find the outliers."""
    return report_of(select(runs, filters), period, threshold, total_runs)


def fps_profile(t: np.ndarray, fps: np.ndarray, bins: int = PROFILE_BINS) -> np.ndarray:
    """Return the mean FPS in each of `bins` equal parts of the run's duration (NaN where no frame fell)."""
    out = np.full(bins, np.nan)
    if t.size == 0:
        return out
    span = float(t[-1] - t[0]) or 1.0
    index = np.minimum(((t - t[0]) / span * bins).astype(int), bins - 1)
    sums = np.bincount(index, weights=fps, minlength=bins)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return out


def _kpis(row: pd.Series) -> dict[str, float | None]:
    """Return a table row's KPIs as plain numbers."""
    return {name: _number(row[name]) for name in KPI_NAMES}


def _number(value: Any) -> float | None:
    """Return a float, or None for a missing value."""
    return None if value is None or pd.isna(value) else float(value)


def _coordinate(value: str) -> RunCoordinate:
    """Parse a coordinate path, as a FleetInputError for the user."""
    try:
        return RunCoordinate.from_path(str(value))
    except ValueError as exc:
        raise FleetInputError(f"Not a run: {exc}.") from None
