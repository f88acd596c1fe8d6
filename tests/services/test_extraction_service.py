"""The extraction service: a subprocess by default, a locked-down container with the docker runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from src.demo import generate_demo
from src.jobs.base import JobCancelled, JobError
from src.models import ExtractionJob, RunCoordinate
from src.services.extraction import ExtractionService, ExtractorSettings
from src.services.local_state import LocalStateService


class RecordingContext:
    """Collect what a job would see: progress events and log lines."""

    job_id = "job-1"

    def __init__(self, cancel_after: int | None = None) -> None:
        self.events: list[dict] = []
        self.lines: list[str] = []
        self.cancel_after = cancel_after

    def progress(self, **fields) -> None:
        self.events.append(fields)

    def log(self, line: str) -> None:
        self.lines.append(line)

    def check_cancelled(self) -> None:
        if self.cancel_after is not None and len(self.events) >= self.cancel_after:
            raise JobCancelled


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate_demo(root / "raw", root / "ml", root / "data", size="tiny", seed=7)
    return root


def downloaded_run(demo: Path, data_root: Path) -> RunCoordinate:
    """Copy one demo run's bags into data_root/raw as a download would."""
    bag = next(p for p in sorted((demo / "raw").rglob("*")) if p.suffix in (".bag", ".mcap"))
    run_dir = bag.parent if bag.suffix == ".bag" else bag.parent.parent
    coord = RunCoordinate.from_path(run_dir.relative_to(demo / "raw").as_posix())
    shutil.copytree(run_dir, data_root / "raw" / coord.to_path_str())
    return coord


def test_local_runner_extracts_with_progress(demo, tmp_path):
    local = LocalStateService(tmp_path)
    coord = downloaded_run(demo, tmp_path)
    service = ExtractionService(local)
    assert service.check_extraction_possible(coord)
    ctx = RecordingContext()
    job = service.execute_extraction(coord, ctx)
    assert job.status.value == "complete" and job.frames_extracted > 0
    assert job.bags_processed == job.total_bags == local.check_raw_downloaded(coord).bag_count
    assert local.check_extracted(coord).extracted
    assert ctx.events[-1]["files_done"] == job.total_bags and "frames" in ctx.events[-1]["message"]


def test_a_corrupt_bag_fails_with_one_line_and_leaves_nothing_extracted(tmp_path):
    coord = RunCoordinate.from_path("acme/north/f1/tw1/lb1/2024-01-01T00-00-00")
    raw = tmp_path / "raw" / coord.to_path_str()
    raw.mkdir(parents=True)
    (raw / "broken.bag").write_bytes(b"#ROSBAG V2.0\n" + b"\x00garbage" * 50)
    service = ExtractionService(LocalStateService(tmp_path))
    with pytest.raises(JobError) as excinfo:
        service.execute_extraction(coord, RecordingContext())
    assert "\n" not in str(excinfo.value) and "broken.bag" in str(excinfo.value)
    assert not LocalStateService(tmp_path).check_extracted(coord).extracted
    assert not (tmp_path / "processed" / coord.to_path_str()).exists()


def test_not_downloaded_runs_are_refused(tmp_path):
    coord = RunCoordinate.from_path("acme/north/f1/tw1/lb1/2024-01-01T00-00-00")
    with pytest.raises(JobError, match="download it first"):
        ExtractionService(LocalStateService(tmp_path)).execute_extraction(coord)


def test_a_job_cancelled_before_it_starts_never_runs_the_extractor(demo, tmp_path):
    local = LocalStateService(tmp_path)
    coord = downloaded_run(demo, tmp_path)
    with pytest.raises(JobCancelled):
        ExtractionService(local).execute_extraction(coord, RecordingContext(cancel_after=0))
    assert not (tmp_path / "processed").exists()


def test_cancel_mid_way_leaves_either_nothing_or_a_complete_output(demo, tmp_path):
    local = LocalStateService(tmp_path)
    coord = downloaded_run(demo, tmp_path)
    with pytest.raises(JobCancelled):
        ExtractionService(local).execute_extraction(coord, RecordingContext(cancel_after=1))
    output = tmp_path / "processed" / coord.to_path_str()
    # The extractor may finish before the cancel lands; what must never happen is a half-written output.
    assert not output.exists() or local.check_extracted(coord).extracted
    leftovers = [p.name for p in output.parent.iterdir() if p.name.startswith(".")] if output.parent.exists() else []
    assert leftovers == []


def test_container_spec_is_locked_down(tmp_path):
    service = ExtractionService(
        LocalStateService(tmp_path), ExtractorSettings(runner="docker", image="team/extractor:2", memory="1g", cpus=1.5)
    )
    coord = RunCoordinate.from_path("acme/north/f1/tw1/lb1/2024-01-01T00-00-00")
    job = ExtractionJob("j", coord, tmp_path / "raw" / "x", tmp_path / "processed" / "x")
    spec = service.container_spec(job, tmp_path / "scratch")
    assert spec["image"] == "team/extractor:2"
    assert spec["network_disabled"] is True
    assert spec["mem_limit"] == "1g" and spec["nano_cpus"] == 1_500_000_000
    assert spec["volumes"][str(job.source_path)] == {"bind": "/input", "mode": "ro"}
    assert spec["volumes"][str(tmp_path / "scratch")] == {"bind": "/output", "mode": "rw"}
    assert spec["command"] == ["python", "-m", "src.extraction", "/input", "/output/x"]


def test_docker_unreachable_is_a_clear_job_error(demo, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    coord = downloaded_run(demo, tmp_path)
    service = ExtractionService(LocalStateService(tmp_path), ExtractorSettings(runner="docker"))
    with pytest.raises(JobError, match="Docker daemon not reachable at unix://"):
        service.execute_extraction(coord, RecordingContext())
