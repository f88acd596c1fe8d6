"""Everything the run analysis view shows for one run, from one call."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from src.analytics import AnalyticsService
from src.analytics.metrics import RunAnalysisData
from src.analytics.moment_store import MomentsService
from src.core.logging import get_logger
from src.models import Moment, NextAction, RunCoordinate, RunState
from src.services.data_state import DataStateService
from src.services.frames import FrameInputError, FrameService

log = get_logger("bagboard.run_view")


@dataclass
class RunView:
    """A run's pipeline state, its analysis when current, and its extraction metadata."""

    state: RunState
    analysis: RunAnalysisData | None = None
    metadata: dict[str, Any] | None = None
    problem: str | None = None  # a one-line reason the analysis could not be shown
    moments: list[Moment] | None = None  # with the frame nearest each, for its thumbnail
    frames: int = 0  # frames the inspector can show (0 before extraction)
    frames_version: str = ""  # the extraction's version: part of frame image URLs

    @property
    def next_action(self) -> NextAction:
        """Return the one action that moves the run along."""
        return self.state.next_action


class RunViewService:
    """Combine run state, cached analysis and extraction metadata for one coordinate."""

    def __init__(
        self,
        data_state: DataStateService,
        analytics: AnalyticsService,
        frames: FrameService | None = None,
        moments: MomentsService | None = None,
    ) -> None:
        self.data_state = data_state
        self.analytics = analytics
        self.frames = frames
        self.moments = moments

    def get_run_view(self, coord: RunCoordinate) -> RunView:
        """Return the run's view model; never computes an analysis (that is a job)."""
        state = self.data_state.get_complete_run_state(coord)
        view = RunView(state=state)
        if state.extraction_status.extracted:
            view.metadata = self._metadata(coord)
            view.frames, view.frames_version = self._frame_count(coord)
        if state.analyzed:
            view.analysis = self.analytics.get_cached_data(coord)
            if view.analysis is None:
                view.problem = "The analysis is older than the extraction outputs: run the analysis again."
            elif self.moments is not None:
                view.moments = self._moments(coord)
        return view

    def _frame_count(self, coord: RunCoordinate) -> tuple[int, str]:
        """Return how many frames the inspector can step through, and the extraction's version."""
        if self.frames is None:
            return 0, ""
        try:
            run = self.frames.run_frames(coord)
        except FrameInputError as exc:
            log.warning("frames_unreadable", coordinate=str(coord), error=str(exc))
            return 0, ""
        return run.count, run.version

    def _moments(self, coord: RunCoordinate) -> list[Moment] | None:
        """Return the run's moments, each with the frame nearest it (for its thumbnail)."""
        assert self.moments is not None
        moments = self.moments.get_moments(coord)
        if not moments or self.frames is None:
            return moments
        try:
            nearest = self.frames.nearest_frames(coord, [moment.t_s for moment in moments])
        except FrameInputError:
            return moments
        return [replace(moment, frame_index=index) for moment, index in zip(moments, nearest, strict=True)]

    def _metadata(self, coord: RunCoordinate) -> dict[str, Any] | None:
        path = self.data_state.local.processed_path(coord) / "metadata.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("extraction_metadata_unreadable", path=str(path), error=str(exc))
            return None
