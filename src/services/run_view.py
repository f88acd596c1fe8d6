"""Everything the run analysis view shows for one run, from one call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from src.analytics import AnalyticsService
from src.analytics.metrics import RunAnalysisData
from src.core.logging import get_logger
from src.models import NextAction, RunCoordinate, RunState
from src.services.data_state import DataStateService

log = get_logger("bagboard.run_view")


@dataclass
class RunView:
    """A run's pipeline state, its analysis when current, and its extraction metadata."""

    state: RunState
    analysis: RunAnalysisData | None = None
    metadata: dict[str, Any] | None = None
    problem: str | None = None  # a one-line reason the analysis could not be shown

    @property
    def next_action(self) -> NextAction:
        """Return the one action that moves the run along."""
        return self.state.next_action


class RunViewService:
    """Combine run state, cached analysis and extraction metadata for one coordinate."""

    def __init__(self, data_state: DataStateService, analytics: AnalyticsService) -> None:
        self.data_state = data_state
        self.analytics = analytics

    def get_run_view(self, coord: RunCoordinate) -> RunView:
        """Return the run's view model; never computes an analysis (that is a job)."""
        state = self.data_state.get_complete_run_state(coord)
        view = RunView(state=state)
        if state.extraction_status.extracted:
            view.metadata = self._metadata(coord)
        if state.analyzed:
            view.analysis = self.analytics.get_cached_data(coord)
            if view.analysis is None:
                view.problem = "The analysis is older than the extraction outputs: run the analysis again."
        return view

    def _metadata(self, coord: RunCoordinate) -> dict[str, Any] | None:
        path = self.data_state.local.processed_path(coord) / "metadata.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("extraction_metadata_unreadable", path=str(path), error=str(exc))
            return None
