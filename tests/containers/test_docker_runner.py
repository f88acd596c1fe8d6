"""The docker extraction runner on a real engine: from the app inside a container (socket mounted) and from a host.

Inside a container the runner finds the data volume's host path in the engine's view of its own container, so the
extraction container gets the same bags read-only (see src/services/engine_paths.py and docs/deployment.md).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from src.demo.generate import generate_demo
from src.jobs.base import JobError
from src.models import HIERARCHY_LEVELS, ProcessingStatus
from src.services.extraction import EXTRACTOR_LABEL, ExtractionService, ExtractorSettings
from src.services.local_state import LocalStateService
from tests.containers.engine import (
    FAST_HEALTH,
    containers_with,
    docker,
    events,
    exec_in,
    host_port,
    remove,
    run_app,
    socket_gid,
    unique,
    wait_healthy,
)
from tests.helpers import wait_for
from tests.scaleout.stack import DashClient
from tests.services.test_extraction_service import RecordingContext, downloaded_run

EXTRACTOR = f"{EXTRACTOR_LABEL}=extractor"
FLASK = ("flask", "--app", "app")


@dataclass
class AppContainer:
    """The app in a container with the docker runner, the engine's socket and a seeded tiny demo."""

    name: str
    runs: list[str]

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the ops CLI inside the container."""
        return exec_in(self.name, *FLASK, *args, env=env or {})

    def client(self) -> DashClient:
        """Return a browser-like session signed in as the demo admin."""
        client = DashClient(f"http://127.0.0.1:{host_port(self.name)}", self.name)
        client.login("demo", "demo")
        return client


@pytest.fixture(scope="module")
def app_container(images) -> Iterator[AppContainer]:
    """Start the app with BAGBOARD_EXTRACTOR_RUNNER=docker as its non-root user, given the socket's group."""
    volume = unique("runner-data")
    docker("volume", "create", volume)
    name = unique("runner-app")
    socket = ("-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", socket_gid())
    env = {"BAGBOARD_ENV": "development", "BAGBOARD_EXTRACTOR_RUNNER": "docker", "BAGBOARD_EXTRACTOR_CPUS": "1"}
    try:
        run_app(name, volume, env, (*socket, *FAST_HEALTH))
        wait_healthy(name)
        seeded = exec_in(name, *FLASK, "demo", "seed", "--size", "tiny")
        assert seeded.returncode == 0, seeded.stderr[-2000:]
        rows = json.loads(exec_in(name, *FLASK, "inventory", "runs", "--json").stdout)
        yield AppContainer(name, sorted(row["coordinate"] for row in rows if row["raw_bags"]))
    finally:
        remove(name, *containers_with(EXTRACTOR))  # a failed test may leave one running: not into the next test
        docker("volume", "rm", "-f", volume, check=False)


def extractor_events(since: float) -> list[str]:
    """Return the extraction containers' lifecycle actions since a time, in order."""
    return [event["Action"] for event in events(since, EXTRACTOR) if event["Action"] in ("create", "start", "destroy")]


def test_the_ops_cli_in_the_container_runs_download_extract_analyse(app_container):
    coord = app_container.runs[0]
    since = time.time()
    for step in ("download", "extract", "analyse"):
        result = app_container.cli("pipeline", step, coord, "--wait")
        assert result.returncode == 0, f"{step}: {result.stdout[-1500:]} {result.stderr[-1500:]}"
    status = json.loads(app_container.cli("pipeline", "status", coord, "--json").stdout)
    assert status["downloaded"] and status["extracted"] and status["analysed"]
    # The extraction ran in a container of its own, which is gone now.
    assert extractor_events(since) == ["create", "start", "destroy"]
    assert containers_with(EXTRACTOR) == []
    jobs = json.loads(app_container.cli("jobs", "list", "--json").stdout)
    extract = next(job for job in jobs if job["kind"] == "extract" and job["target"] == coord)
    assert extract["started_by"] == "cli" and extract["result"]["frames"] > 0


def test_the_ui_runs_the_pipeline_over_http_with_the_docker_runner(app_container):
    coord = app_container.runs[1]
    client = app_container.client()
    search = "?" + urlencode(dict(zip(HIERARCHY_LEVELS, coord.split("/"), strict=True)))
    url = '{"type":"filter-url","view":"run-analysis"}.search'
    since = time.time()
    for kind in ("download", "extract", "analyze"):
        response = client.call("ra-job.data", {"ra-action.n_clicks": 1, url: search}, via="ra-action.n_clicks")
        job_id = response["ra-job"]["data"]
        row = wait_for(
            lambda job_id=job_id: (lambda r: r if r and r.status in ("complete", "failed") else None)(
                client.jobs().get(job_id)
            ),
            120,
            f"{kind} job shown as finished",
            interval=0.5,
        )
        assert (row.kind, row.status, row.started_by, row.error) == (kind, "complete", "demo", "")
    assert extractor_events(since) == ["create", "start", "destroy"]
    # Jobs the CLI started show in the same Jobs tab, as the cli's.
    assert any(row.started_by == "cli" for row in client.jobs().values())


def test_extraction_failures_are_one_line_job_errors(app_container):
    coord = app_container.runs[2]
    assert app_container.cli("pipeline", "download", coord, "--wait").returncode == 0
    no_engine = "unix:///tmp/no-engine.sock"
    cases = {
        "missing image": (
            {"BAGBOARD_EXTRACTOR_IMAGE": "bagboard-missing:0"},
            "extractor image 'bagboard-missing:0' not found: build or pull it",
        ),
        "no daemon": ({"DOCKER_HOST": no_engine}, f"Docker daemon not reachable at {no_engine}"),
        "oom": ({"BAGBOARD_EXTRACTOR_MEMORY": "12m"}, "the extractor ran out of memory (limit 12m) and was killed"),
    }
    for case, (env, error) in cases.items():
        result = app_container.cli("pipeline", "extract", coord, "--wait", env=env)
        assert result.returncode == 1, f"{case}: {result.stdout[-800:]}"
        assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {error}"), case
    assert containers_with(EXTRACTOR) == []

    # Killed by hand while it runs (a slow CPU share gives the test time to find it).
    argv = ["docker", "exec", "-e", "BAGBOARD_EXTRACTOR_CPUS=0.05", app_container.name, *FLASK]
    follow = subprocess.Popen([*argv, "pipeline", "extract", coord, "--wait"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        # Running, not just created: the engine refuses to kill a container that has not started.
        running = wait_for(
            lambda: containers_with(EXTRACTOR, "running"), 60, "the extraction container running", interval=0.2
        )
        docker("kill", running[0])
        _, stderr = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 1
    assert stderr.strip().splitlines()[-1] == "Error: the extractor container was stopped from outside (exit code 137)"
    wait_for(lambda: not containers_with(EXTRACTOR), 30, "the killed container removed")
    # Nothing half-extracted is left, and a plain retry succeeds.
    assert not json.loads(app_container.cli("pipeline", "status", coord, "--json").stdout)["extracted"]
    assert app_container.cli("pipeline", "extract", coord, "--wait").returncode == 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """Return a tiny demo's buckets and data root."""
    root = tmp_path_factory.mktemp("demo")
    generate_demo(root / "raw", root / "ml", root / "data", size="tiny", seed=7)
    return root


def test_the_docker_runner_works_from_the_host(images, demo, tmp_path):
    local = LocalStateService(tmp_path)
    coord = downloaded_run(demo, tmp_path)
    service = ExtractionService(local, ExtractorSettings(runner="docker", image=images.app))
    since, volumes = time.time(), set(docker("volume", "ls", "-q").stdout.split())
    job = service.execute_extraction(coord, RecordingContext())
    assert job.status is ProcessingStatus.COMPLETE and local.check_extracted(coord).extracted
    assert extractor_events(since) == ["create", "start", "destroy"]
    # The image declares VOLUME /data: removing the container removes its anonymous volume too.
    assert set(docker("volume", "ls", "-q").stdout.split()) <= volumes
    missing = ExtractionService(local, ExtractorSettings(runner="docker", image="bagboard-missing:0"))
    with pytest.raises(JobError, match="extractor image 'bagboard-missing:0' not found"):
        missing.execute_extraction(coord, RecordingContext())
