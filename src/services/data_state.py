"""Combine the cloud inventory and local state into what each view shows."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping

import pandas as pd

from src.models import (
    FILTER_LEVELS,
    HIERARCHY_LEVELS,
    CloudRawStatus,
    CoverageBreakdown,
    CoverageReport,
    CoverageStatistics,
    ExtractionStatus,
    LocalRawStatus,
    RunCoordinate,
    RunState,
    StateOverview,
    TemporalData,
    validate_part,
)
from src.services import coverage
from src.services.inventory import CloudInventoryService
from src.services.local_scan import ANALYSIS_DIR, ANALYSIS_SUMMARY, LocalScan
from src.services.local_state import LocalStateService

Filters = Mapping[str, str | None]
# Beyond these, a chart turns into ink and a table into megabytes: the view gets time buckets and the worst rows
# (the CSV export still has every row).
MAX_CHART_POINTS = 500
MAX_TABLE_ROWS = 500
MAX_HEATMAP_COLUMNS = 120


def clean_filters(filters: Filters | None) -> dict[str, str]:
    """Return the contiguous, validated filter levels; raise ValueError naming a bad one."""
    cleaned: dict[str, str] = {}
    for level in FILTER_LEVELS:
        value = (filters or {}).get(level)
        if not value:
            break
        cleaned[level] = validate_part(level, value)
    return cleaned


class DataStateService:
    """Answer the views' questions from the inventory (cloud) and the data root (local)."""

    def __init__(
        self, cloud: CloudInventoryService, local: LocalStateService, expected_samples_per_bag: int = 17
    ) -> None:
        self.cloud = cloud
        self.local = local
        self.expected_samples_per_bag = expected_samples_per_bag

    # page 1: temporal coverage --------------------------------------------------------------------

    def _selection(self, filters: Filters | None) -> coverage.RunSelection:
        return self.cloud.select_runs(clean_filters(filters))

    def get_temporal_coverage_data(
        self, filters: Filters | None, expected_samples_per_bag: int | None = None
    ) -> TemporalData:
        """Return raw bags, samples and gap per timestamp, summed over every run under the filter."""
        return coverage.temporal_data(self._selection(filters), self._expected(expected_samples_per_bag))

    def get_coverage_statistics(
        self,
        filters: Filters | None,
        expected_samples_per_bag: int | None = None,
        threshold_pct: float = coverage.DEFAULT_THRESHOLD_PCT,
        limit: int | None = None,
    ) -> CoverageStatistics:
        """Return the KPI figures and the under-labelled runs (worst first; all of them unless limited)."""
        return coverage.coverage_statistics(
            self._selection(filters), self._expected(expected_samples_per_bag), threshold_pct, limit=limit
        )

    def get_coverage_breakdown(
        self,
        filters: Filters | None,
        expected_samples_per_bag: int | None = None,
        threshold_pct: float = coverage.DEFAULT_THRESHOLD_PCT,
    ) -> CoverageBreakdown | None:
        """Return coverage per child of the next level for a partial selection."""
        cleaned = clean_filters(filters)
        return coverage.coverage_breakdown(
            self.cloud.select_runs(cleaned),
            cleaned,
            self._expected(expected_samples_per_bag),
            threshold_pct,
        )

    def get_coverage_report(
        self,
        filters: Filters | None,
        expected_samples_per_bag: int | None = None,
        threshold_pct: float = coverage.DEFAULT_THRESHOLD_PCT,
    ) -> CoverageReport:
        """Return the whole coverage view for a selection, reading the inventory once."""
        cleaned = clean_filters(filters)
        expected = self._expected(expected_samples_per_bag)
        if not 0 <= threshold_pct <= 100:
            raise ValueError("the under-labelled threshold must be between 0 and 100 %")
        info = self.cloud.get_cache_info()
        runs = self.cloud.select_runs(cleaned)
        return CoverageReport(
            filters=cleaned,
            expected_samples_per_bag=expected,
            threshold_pct=threshold_pct,
            temporal=coverage.temporal_data(runs, expected, max_points=MAX_CHART_POINTS),
            statistics=coverage.coverage_statistics(runs, expected, threshold_pct, limit=MAX_TABLE_ROWS),
            breakdown=coverage.coverage_breakdown(
                runs, cleaned, expected, threshold_pct, max_columns=MAX_HEATMAP_COLUMNS
            ),
            inventory_available=bool(info.get("available")),
            inventory_age_seconds=info.get("age_seconds"),
            stale_since=info.get("stale_since"),
            stale_reason=info.get("last_error") or info.get("stale_reason"),
        )

    # pages 2 and 3: run state ------------------------------------------------------------------

    def generate_coordinates_from_filters(self, filters: Filters | None) -> list[RunCoordinate]:
        """Return every run under the (possibly partial) filter, in hierarchy and time order."""
        runs = self.cloud.get_temporal_data(clean_filters(filters))
        return [RunCoordinate(*values) for values in runs[list(HIERARCHY_LEVELS)].itertuples(index=False)]

    def get_complete_run_state(self, coord: RunCoordinate) -> RunState:
        """Return one run's cloud, local and extraction state with the next pipeline action."""
        return RunState.derive(
            coord,
            self.cloud.get_raw_bags_info(coord),
            self.local.check_raw_downloaded(coord),
            self.local.check_extracted(coord),
            analyzed=(self.local.processed_path(coord) / ANALYSIS_DIR / ANALYSIS_SUMMARY).is_file(),
        )

    def get_state_overview_data(self, coords: list[RunCoordinate], filters: Filters | None = None) -> list[dict]:
        """Return one overview row per given run, each from a full derive; one directory walk serves them all."""
        cleaned = clean_filters(filters)
        scan = LocalScan(self.local.data_root, cleaned)
        runs = self.cloud.get_runs(cleaned)
        cloud = {
            "/".join(values[:6]): values[6:]
            for values in runs[[*HIERARCHY_LEVELS, *CLOUD_COLUMNS]].itertuples(index=False)
        }
        rows = []
        for coord in coords:
            bags, size, samples = cloud.get(coord.to_path_str(), (0, 0, 0))
            rows.append(overview_row(scanned_state(coord, bags, size, scan), int(samples)))
        return rows

    def get_state_overview(self, filters: Filters | None) -> list[dict]:
        """Return the overview rows of every run under the filter (the download manager's table)."""
        return self.get_state_summary(filters).rows

    def get_state_summary(self, filters: Filters | None, limit: int | None = None) -> StateOverview:
        """Return the first `limit` overview rows (all when None) and the KPI counts over every run."""
        if limit is not None and limit < 0:
            raise ValueError("the row limit must not be negative")
        cleaned = clean_filters(filters)
        runs = self.cloud.get_runs(cleaned)
        scan = LocalScan(self.local.data_root, cleaned)
        downloaded, extracted, analyzed = self._local_counts(scan)
        return StateOverview(
            rows=state_rows(runs if limit is None else runs.iloc[:limit], scan),
            total_runs=len(runs),
            with_cloud_bags=int((runs["raw_bags"].to_numpy() > 0).sum()),
            downloaded=downloaded,
            extracted=extracted,
            analyzed=analyzed,
        )

    def _local_counts(self, scan: LocalScan) -> tuple[int, int, int]:
        """Count the inventory's downloaded, extracted and analysed runs, visiting local runs only."""
        downloaded, extracted, summary = scan.downloaded_runs(), scan.extracted_runs(), scan.analyzed_runs()
        members = self._inventory_runs(downloaded | extracted | summary)
        flags = Counter((run in downloaded, run in extracted, run in summary) for run in members)
        # RunState.derive decides what "analysed" means: ask it once per combination of flags, not once per run.
        analyzed = sum(count for combo, count in flags.items() if local_state(*combo).analyzed)
        return len(downloaded & members), len(extracted & members), analyzed

    def _inventory_runs(self, paths: set[str]) -> set[str]:
        """Return the run paths (six parts) that are runs of the inventory: one look-up per parent."""
        by_parent: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for path in paths:
            by_parent[tuple(path.split("/")[:-1])].append(path)
        members: set[str] = set()
        for parent, group in by_parent.items():
            try:
                timestamps = set(self.cloud.get_hierarchy_level("timestamp", parent))
            except ValueError:  # a local directory name no inventory run can have
                continue
            members.update(path for path in group if path.rsplit("/", 1)[1] in timestamps)
        return members

    def get_filter_options(self, level: str, parent_filters: Filters | None = None) -> list[str]:
        """Return the options of a filter level under its parents, from the inventory only."""
        if level not in FILTER_LEVELS and level != "timestamp":
            raise ValueError(f"unknown level {level!r}")
        parents = clean_filters(parent_filters)
        depth = (*FILTER_LEVELS, "timestamp").index(level)
        if len(parents) < depth:
            return []
        parent_path = tuple(parents[name] for name in FILTER_LEVELS[:depth])
        return self.cloud.get_hierarchy_level(level, parent_path)

    def get_available_timestamps(self, filters: Filters | None) -> list[str]:
        """Return the run timestamps under a full five-level filter, in time order."""
        cleaned = clean_filters(filters)
        if len(cleaned) < len(FILTER_LEVELS):
            return []
        return self.get_filter_options("timestamp", cleaned)

    def _expected(self, value: int | None) -> int:
        expected = self.expected_samples_per_bag if value is None else int(value)
        if expected <= 0:
            raise ValueError("expected samples per bag must be positive")
        return expected


# run-state rows -------------------------------------------------------------------------------------

CLOUD_COLUMNS = ("raw_bags", "raw_bytes", "ml_samples")  # what an overview row takes from the inventory
STAND_IN = RunCoordinate("-", "-", "-", "-", "-", "-")  # the coordinate of derived templates, replaced per run


def overview_row(state: RunState, cloud_samples: int) -> dict:
    """Flatten a run state into a table row."""
    return {
        "coordinate": state.coordinate.to_path_str(),
        "timestamp": state.coordinate.timestamp,
        "cloud_bags": state.cloud_raw_status.bag_count,
        "cloud_bytes": state.cloud_raw_status.total_size,
        "cloud_samples": cloud_samples,
        "local_bags": state.local_raw_status.bag_count,
        "downloaded": state.local_raw_status.downloaded,
        "extracted": state.extraction_status.extracted,
        "analyzed": state.analyzed,
        "status": state.pipeline_status.value,
        "next_action": state.next_action.value,
        "blocked": state.blocked_reason or "",
    }


def scanned_state(coord: RunCoordinate, bags: int, size: int, scan: LocalScan) -> RunState:
    """Derive one run's state from its cloud counts and the local walk."""
    return RunState.derive(
        coord,
        CloudRawStatus(exists=bags > 0, bag_count=int(bags), bag_names=[], total_size=int(size)),
        scan.check_raw_downloaded(coord),
        scan.check_extracted(coord),
        analyzed=scan.is_analyzed(coord),
    )


def local_state(downloaded: bool, extracted: bool, summary: bool, cloud_bags: int = 0) -> RunState:
    """Derive the state of a stand-in run with these local flags (what the verdict depends on, nothing else)."""
    return RunState.derive(
        STAND_IN,
        CloudRawStatus(exists=cloud_bags > 0, bag_count=cloud_bags),
        LocalRawStatus(downloaded=downloaded, bag_count=int(downloaded)),
        ExtractionStatus(extracted=extracted),
        analyzed=summary,
    )


def state_rows(runs: pd.DataFrame, scan: LocalScan) -> list[dict]:
    """Return the overview rows of runs: a full derive for runs with local data, a filled-in template otherwise."""
    local = scan.local_runs()
    # Most runs have nothing on disk; their row differs only in the per-run fields set below, and the verdict only
    # in whether the cloud has bags (the blocked reason), so RunState.derive runs twice instead of once per run.
    templates = {has: overview_row(local_state(False, False, False, cloud_bags=int(has)), 0) for has in (False, True)}
    columns = [runs[name].tolist() for name in (*HIERARCHY_LEVELS, *CLOUD_COLUMNS)]
    rows = []
    for *parts, bags, size, samples in zip(*columns, strict=True):
        path = "/".join(parts)
        if path in local:
            rows.append(overview_row(scanned_state(RunCoordinate(*parts), bags, size, scan), int(samples)))
            continue
        # No RunCoordinate (12 µs a row): the inventory only holds valid parts, and a coordinate coming back from
        # the grid is validated again before use (selected_coordinates).
        row = dict(templates[bags > 0])
        row.update(coordinate=path, timestamp=parts[-1], cloud_bags=bags, cloud_bytes=size, cloud_samples=samples)
        rows.append(row)
    return rows
