"""Data models: the contracts between storage, services, callbacks and jobs."""

from __future__ import annotations

from src.models.analysis import AnalysisMetrics, AnalysisPlots, ExtractedData, RunAnalysis
from src.models.coordinate import (
    FILTER_LEVELS,
    HIERARCHY_LEVELS,
    MAX_PART_LENGTH,
    RunCoordinate,
    validate_part,
)
from src.models.coverage import CoverageBreakdown, CoverageReport, CoverageStatistics, TemporalData
from src.models.frames import MOMENT_KINDS, FrameBox, FrameView, Moment
from src.models.jobs import DownloadJob, ExtractionJob
from src.models.state import (
    EXPECTED_EXTRACTION_FILES,
    NO_CLOUD_BAGS,
    CloudRawStatus,
    ExtractionStatus,
    LocalRawStatus,
    RunState,
    StateOverview,
)
from src.models.status import DataStatus, NextAction, ProcessingStatus

__all__ = [
    "EXPECTED_EXTRACTION_FILES",
    "FILTER_LEVELS",
    "HIERARCHY_LEVELS",
    "MAX_PART_LENGTH",
    "MOMENT_KINDS",
    "NO_CLOUD_BAGS",
    "AnalysisMetrics",
    "AnalysisPlots",
    "CloudRawStatus",
    "CoverageBreakdown",
    "CoverageReport",
    "CoverageStatistics",
    "DataStatus",
    "DownloadJob",
    "ExtractedData",
    "ExtractionJob",
    "ExtractionStatus",
    "FrameBox",
    "FrameView",
    "LocalRawStatus",
    "Moment",
    "NextAction",
    "ProcessingStatus",
    "RunAnalysis",
    "RunCoordinate",
    "RunState",
    "StateOverview",
    "TemporalData",
    "validate_part",
]
