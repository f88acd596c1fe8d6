"""Bag extractor: a run folder's ROS1/ROS2 bags → frames, detections and tracking files (pure library code).

The output contract is docs/extraction-contract.md; `python -m src.extraction IN_DIR OUT_DIR` is the CLI.
"""

from __future__ import annotations

from src.extraction.errors import ExtractionCancelled, ExtractionError
from src.extraction.extract import (
    CONTRACT_VERSION,
    EXTRACTOR_VERSION,
    OPTIONAL_OUTPUT_FILES,
    OUTPUT_FILES,
    ExtractionSummary,
    ProgressCallback,
    extract_run,
)
from src.extraction.stamps import read_header_stamp

__all__ = [
    "CONTRACT_VERSION",
    "EXTRACTOR_VERSION",
    "OPTIONAL_OUTPUT_FILES",
    "OUTPUT_FILES",
    "ExtractionCancelled",
    "ExtractionError",
    "ExtractionSummary",
    "ProgressCallback",
    "extract_run",
    "read_header_stamp",
]
