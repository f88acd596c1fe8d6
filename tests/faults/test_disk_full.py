"""Fault: the disk fills up while the extractor writes its outputs.

Two honest ways to make the extractor's writes fail, each run as a real extraction job (JobRunner ->
the app's extract handler -> ExtractionService -> the extractor subprocess):

- tmpfs: processed/ is a 64 KiB tmpfs (needs root and mount(2)); writes fail with ENOSPC;
- rlimit: the extractor process runs with RLIMIT_FSIZE = 32 KiB; writes beyond it fail with EFBIG.

What an operator sees: the job FAILED with one line saying the disk is full / the file too large,
the run is not marked extracted, no output folder (final or temporary) is left behind, and once
space is back the same extraction succeeds.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

import src.services.extraction as extraction_module
from src.analytics import AnalyticsService
from src.auth.roles import Role
from src.demo import generate_demo
from src.jobs.base import JobKind
from src.jobs.registry import open_registry
from src.jobs.runner import JobRunner
from src.models import ProcessingStatus, RunCoordinate
from src.services.extraction import ExtractionService
from src.services.job_handlers import bind_handlers
from src.services.local_state import LocalStateService
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

TMPFS_SIZE = "64k"
FSIZE_LIMIT = 32 * 1024


class Operator:
    """A signed-in operator as the job runner sees one."""

    name = "operator"
    role = Role.OPERATOR

    def can(self, required: Role) -> bool:
        return self.role.allows(required)


@pytest.fixture(scope="module")
def demo_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generate the tiny demo once; return its raw bucket folder."""
    root = tmp_path_factory.mktemp("demo")
    generate_demo(root / "raw", root / "ml", root / "data", size="tiny", seed=7)
    return root / "raw"


def downloaded_run(demo_raw: Path, data_root: Path) -> RunCoordinate:
    """Copy the demo run with the most bag bytes into data_root/raw, as a download would."""
    bags = [p for p in demo_raw.rglob("*") if p.suffix in (".bag", ".mcap")]
    runs: dict[Path, int] = {}
    for bag in bags:
        run_dir = bag.parent if bag.suffix == ".bag" else bag.parent.parent
        runs[run_dir] = runs.get(run_dir, 0) + bag.stat().st_size
    run_dir = max(runs, key=runs.__getitem__)
    coord = RunCoordinate.from_path(run_dir.relative_to(demo_raw).as_posix())
    shutil.copytree(run_dir, data_root / "raw" / coord.to_path_str())
    return coord


@pytest.fixture
def tiny_processed_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """Mount a 64 KiB tmpfs on data_root/processed; unmount afterwards. Skip where mounting is impossible."""
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(processed)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}); the rlimit case runs")
    try:
        yield processed
    finally:
        while os.path.ismount(processed):  # the test may have remounted it
            subprocess.run(["umount", str(processed)], check=True)


class _FsizeLimitedSubprocess:
    """The subprocess module, except that Popen children get RLIMIT_FSIZE (writes past it fail with EFBIG)."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # stands in for subprocess.Popen, hence the name
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))

        # preexec_fn: the limit must hold in the child only, from before it writes anything.
        return subprocess.Popen(*args, preexec_fn=limit, **kwargs)


def run_extraction_job(data_root: Path, coord: RunCoordinate):
    """Run the extraction as the app does (a job on the runner, the app's extract handler); return the job."""
    local = LocalStateService(data_root)
    runner = JobRunner(open_registry(data_root), handlers={})
    bind_handlers(runner, SimpleNamespace(extraction=ExtractionService(local), analytics=AnalyticsService(local)))
    try:
        job = runner.submit(JobKind.EXTRACT, coord.to_path_str(), {"coordinate": coord.to_path_str()}, Operator())
        return wait_for(lambda: (j := runner.registry.get(job.id)) and not j.is_active and j, timeout=60)
    finally:
        runner.shutdown(wait=True)


def assert_nothing_extracted(data_root: Path, coord: RunCoordinate) -> None:
    """The run is not extracted and no output folder, final or temporary, is left."""
    local = LocalStateService(data_root)
    status = local.check_extracted(coord)
    assert not status.extracted
    final = local.processed_path(coord)
    assert not final.exists(), f"{final} exists after a failed extraction"
    leftovers = sorted(p.name for p in final.parent.iterdir()) if final.parent.exists() else []
    assert leftovers == [], f"temporary output left behind: {leftovers}"
    assert local.check_raw_downloaded(coord).downloaded, "the downloaded bags are untouched"


def test_extraction_onto_a_full_tmpfs_fails_cleanly_and_succeeds_once_space_is_back(
    demo_raw: Path, tmp_path: Path, tiny_processed_tmpfs: Path
):
    data_root = tmp_path / "data"
    coord = downloaded_run(demo_raw, data_root)

    job = run_extraction_job(data_root, coord)

    assert job.status is ProcessingStatus.FAILED
    assert job.error and "\n" not in job.error
    assert "No space left on device" in job.error, job.error
    assert_nothing_extracted(data_root, coord)
    assert shutil.disk_usage(tiny_processed_tmpfs).used < 16 * 1024, "the partial output was removed"

    subprocess.run(["umount", str(tiny_processed_tmpfs)], check=True)  # space is back
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(tiny_processed_tmpfs)], check=True)
    again = run_extraction_job(data_root, coord)
    assert again.status is ProcessingStatus.COMPLETE, again.error
    assert LocalStateService(data_root).check_extracted(coord).extracted


def test_extraction_past_the_file_size_limit_fails_cleanly_and_succeeds_without_it(
    demo_raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    data_root = tmp_path / "data"
    coord = downloaded_run(demo_raw, data_root)
    with monkeypatch.context() as patch:
        patch.setattr(extraction_module, "subprocess", _FsizeLimitedSubprocess())
        job = run_extraction_job(data_root, coord)

    assert job.status is ProcessingStatus.FAILED
    assert job.error and "\n" not in job.error
    assert "File too large" in job.error, job.error
    assert_nothing_extracted(data_root, coord)

    again = run_extraction_job(data_root, coord)
    assert again.status is ProcessingStatus.COMPLETE, again.error
    assert LocalStateService(data_root).check_extracted(coord).extracted
