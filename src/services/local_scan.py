"""One directory walk that answers many per-run local-state questions (the overview of thousands of runs)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from src.models import (
    EXPECTED_EXTRACTION_FILES,
    FILTER_LEVELS,
    HIERARCHY_LEVELS,
    ExtractionStatus,
    LocalRawStatus,
    RunCoordinate,
)
from src.services.local_state import BAG_SUFFIXES, INFLIGHT_SUFFIXES

ANALYSIS_DIR = "analysis"
ANALYSIS_SUMMARY = "summary.json"  # written last by the analytics service: its presence means "analysed"
RUN_DEPTH = len(HIERARCHY_LEVELS)


class LocalScan:
    """Local state of every run under a filter prefix, read in one walk per root."""

    def __init__(self, data_root: Path, filters: dict[str, str] | None = None) -> None:
        prefix = tuple((filters or {})[level] for level in FILTER_LEVELS if (filters or {}).get(level))
        self._raw_root = Path(data_root) / "raw"
        self._processed_root = Path(data_root) / "processed"
        self._bags: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self._outputs: dict[str, set[str]] = defaultdict(set)
        self._analyzed: set[str] = set()
        self._walk(self._raw_root, prefix, self._collect_raw)
        self._walk(self._processed_root, prefix, self._collect_processed)

    def check_raw_downloaded(self, coord: RunCoordinate) -> LocalRawStatus:
        """Answer like LocalStateService.check_raw_downloaded, from the walk."""
        key = coord.to_path_str()
        bags = sorted(self._bags.get(key, []))
        path = self._raw_root.joinpath(*coord.to_path_tuple())
        return LocalRawStatus(
            downloaded=bool(bags),
            bag_count=len(bags),
            bag_names=[name for name, _ in bags],
            total_size=sum(size for _, size in bags),
            path=str(path) if bags else None,
        )

    def check_extracted(self, coord: RunCoordinate) -> ExtractionStatus:
        """Answer like LocalStateService.check_extracted, from the walk."""
        key = coord.to_path_str()
        present = [name for name in EXPECTED_EXTRACTION_FILES if name in self._outputs.get(key, ())]
        path = self._processed_root.joinpath(*coord.to_path_tuple())
        return ExtractionStatus.from_present(present, path=str(path) if key in self._outputs else None)

    def is_analyzed(self, coord: RunCoordinate) -> bool:
        """Tell whether the run's analysis summary exists."""
        return coord.to_path_str() in self._analyzed

    # Whole-walk answers as run path strings: what a count over many runs needs, without an object per run.

    def local_runs(self) -> set[str]:
        """Return the runs with any file on disk, raw or processed."""
        return set(self._bags) | set(self._outputs)

    def downloaded_runs(self) -> set[str]:
        """Return the runs that check_raw_downloaded calls downloaded."""
        return {run for run, bags in self._bags.items() if bags}

    def extracted_runs(self) -> set[str]:
        """Return the runs that check_extracted calls extracted."""
        return {run for run, names in self._outputs.items() if ExtractionStatus.from_present(names).extracted}

    def analyzed_runs(self) -> set[str]:
        """Return the runs that is_analyzed answers yes for (summary present, whatever else is there)."""
        return set(self._analyzed)

    def _collect_raw(self, run: str, relative: str, size: int) -> None:
        if relative.lower().endswith(BAG_SUFFIXES):
            self._bags[run].append((relative, size))

    def _collect_processed(self, run: str, relative: str, _size: int) -> None:
        self._outputs[run].add(relative)
        if relative == f"{ANALYSIS_DIR}/{ANALYSIS_SUMMARY}":
            self._analyzed.add(run)

    @staticmethod
    def _walk(root: Path, prefix: tuple[str, ...], collect: Callable[[str, str, int], None]) -> None:
        """Walk root/prefix, calling collect(run path, path below the run, size) per file."""
        start = root.joinpath(*prefix)
        stack = [(start, list(prefix))]
        while stack:
            directory, parts = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                # Temp names (.part, .tmp-…) and in-flight files never count; symlinks are never followed.
                if name.startswith(".") or name.lower().endswith(INFLIGHT_SUFFIXES):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), [*parts, name]))
                elif entry.is_file(follow_symlinks=False) and len(parts) >= RUN_DEPTH:
                    run = "/".join(parts[:RUN_DEPTH])
                    relative = "/".join([*parts[RUN_DEPTH:], name])
                    try:
                        collect(run, relative, entry.stat(follow_symlinks=False).st_size)
                    except OSError:
                        continue
