"""Fixtures for the frame tests: the extraction tests' demo and real bags, extracted into one data root."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.extraction import extract_run
from src.models import RunCoordinate
from src.services.frames import FrameService
from src.services.local_state import LocalStateService
from tests.extraction.conftest import Demo, DemoRun, demo, real_bags  # noqa: F401 - fixtures shared

REAL = ("tiny.bag", "tiny_svo.bag", "ros2_mcap", "ros2_sqlite3")


@dataclass(frozen=True)
class Extracted:
    """Demo runs and real bags laid out as a data root: raw/{coord} (the bags) and processed/{coord}."""

    local: LocalStateService
    demo_runs: dict[RunCoordinate, DemoRun]
    real: dict[str, RunCoordinate]  # real bag name -> its run

    def service(self) -> FrameService:
        """Return a fresh FrameService on the data root."""
        return FrameService(self.local)


@pytest.fixture(scope="session")
def extracted(demo: Demo, real_bags: Path | None, tmp_path_factory: pytest.TempPathFactory) -> Extracted:  # noqa: F811
    """Extract every demo run and every real bag once per session."""
    root = tmp_path_factory.mktemp("frames-data")
    local = LocalStateService(root)
    demo_runs = {}
    for run in demo.runs:
        raw = local.raw_path(run.plan.coord)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.symlink_to(run.path, target_is_directory=True)
        extract_run(raw, local.processed_path(run.plan.coord))
        demo_runs[run.plan.coord] = run
    real = {}
    for index, name in enumerate(REAL if real_bags else ()):
        coord = RunCoordinate("real", "bags", "f", "t", "l", f"run{index}")
        raw = local.raw_path(coord)
        raw.mkdir(parents=True)
        source = real_bags / name
        if source.is_dir():
            shutil.copytree(source, raw / name)
        else:
            shutil.copy(source, raw / name)
        extract_run(raw, local.processed_path(coord))
        real[name] = coord
    return Extracted(local, demo_runs, real)


@pytest.fixture
def real(extracted: Extracted) -> dict[str, RunCoordinate]:
    """Return the real bags' runs, or skip where the real bags are not checked out."""
    if not extracted.real:
        pytest.skip("real test bags not checked out")
    return extracted.real
