"""docker-compose.yml itself on a real engine (docker-compose 1.29): the dev stack and the scale profile.

The images compose would pull are built locally under the names the file uses (see images.py), so what runs is
the repository's compose file, unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from src.auth.roles import Role
from src.jobs.base import JobKind
from src.jobs.redis_registry import RedisJobRegistry
from src.jobs.runner import JobRunner
from src.jobs.worker import builtin_handlers
from src.services.extraction import EXTRACTOR_LABEL
from tests.containers.engine import (
    SECRET,
    Compose,
    compose_project,
    container_ip,
    docker,
    events,
    exec_in,
    logs,
    socket_gid,
    wait_http,
)
from tests.helpers import Actor, wait_for
from tests.scaleout.stack import DashClient, JobRow
from tests.support.fake_gcs import free_port

FLASK = ("flask", "--app", "app")
HEARTBEAT_TIMEOUT = 6
BASE_ENV = {
    "BAGBOARD_SECRET_KEY": SECRET,
    # development: the seed creates the demo/demo admin the tests sign in with, and cookies work over http.
    "BAGBOARD_ENV": "development",
    "BAGBOARD_DEMO_SIZE": "tiny",
    "BAGBOARD_LOG_FORMAT": "json",
}


def stack_env() -> dict[str, str]:
    """Return the environment of one stack: free loopback ports for everything the file publishes."""
    ports = {name: str(free_port()) for name in ("BAGBOARD_PORT", "BAGBOARD_GCS_PORT", "BAGBOARD_LB_PORT")}
    return {**BASE_ENV, **ports}


def runs_with_bags(container: str) -> list[str]:
    """Return the inventory's runs that have raw bags, as the container's CLI lists them."""
    listed = exec_in(container, *FLASK, "inventory", "runs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    return sorted(row["coordinate"] for row in json.loads(listed.stdout) if row["raw_bags"])


def test_the_dev_stack_serves_the_login_page_and_the_emulators_inventory(compose_images):
    with compose_project(stack_env()) as stack:
        stack("up", "-d", "--no-build", "app", timeout=600)
        base = f"http://127.0.0.1:{stack.env['BAGBOARD_PORT']}"
        assert "csrf_token" in wait_http(f"{base}/login").text
        app = stack.container("app")
        assert runs_with_bags(app)  # seeded into fake-gcs-server by the one-shot seed service
        seed = json.loads(docker("inspect", stack.container("seed")).stdout)[0]["State"]
        assert seed["Status"] == "exited" and seed["ExitCode"] == 0
        client = DashClient(base, "app")
        client.login("demo", "demo")
        assert client.home_run_count() == 8
        # The emulator is fake-gcs-server, reachable on its host port as well.
        buckets = wait_http(f"http://127.0.0.1:{stack.env['BAGBOARD_GCS_PORT']}/storage/v1/b").json()
        assert {item["name"] for item in buckets["items"]} == {"bagboard-raw", "bagboard-ml"}


@pytest.fixture(scope="module")
def scale_stack(compose_images) -> Iterator[Compose]:
    """Two web replicas behind lb and two workers whose extractions run in containers of their own."""
    env = {
        **stack_env(),
        "DOCKER_GID": socket_gid(),
        "BAGBOARD_JOB_HEARTBEAT_INTERVAL": "1",
        "BAGBOARD_JOB_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    }
    with compose_project(env) as stack:
        stack("--profile", "scale", "up", "-d", "--no-build", "--scale", "web=2", "--scale", "worker=2", "lb", "worker")
        wait_http(f"http://127.0.0.1:{stack.env['BAGBOARD_LB_PORT']}/login")
        for index in (1, 2):
            wait_for(
                lambda index=index: "ready" in logs(stack.container("worker", index)), 90, "worker ready", interval=1
            )
        yield stack


def lb_client(stack: Compose) -> DashClient:
    """Return a session signed in through the load balancer."""
    client = DashClient(f"http://127.0.0.1:{stack.env['BAGBOARD_LB_PORT']}", "lb")
    client.login("demo", "demo")
    return client


def replica_client(stack: Compose, index: int) -> DashClient:
    """Return a session signed in on one web replica directly (the host reaches the compose network)."""
    client = DashClient(f"http://{container_ip(stack.container('web', index))}:8050", f"web_{index}")
    client.login("demo", "demo")
    return client


def wait_row(client: DashClient, job_id: str, status: str, timeout: float = 90) -> JobRow:
    """Poll the client's Jobs tab until the job shows status."""

    def shown() -> JobRow | None:
        row = client.jobs().get(job_id)
        return row if row and row.status == status else None

    return wait_for(shown, timeout, f"job {job_id} {status} on {client.label}", interval=0.5)


def ran_on(stack: Compose, job_id: str, event: str = "job_complete") -> list[str]:
    """Return the worker containers whose log has the job's event."""
    workers = [stack.container("worker", index) for index in (1, 2)]
    return [name for name in workers if any(job_id in line and event in line for line in logs(name).splitlines())]


def test_a_job_started_through_the_lb_runs_on_a_worker_and_every_replica_sees_it(scale_stack):
    coord = runs_with_bags(scale_stack.container("web", 1))[0]
    lb = lb_client(scale_stack)
    assert "download" in lb.start_download(coord).lower()
    job_id = next(row.id for row in lb.jobs().values() if row.kind == "download" and row.target == coord)
    for index in (1, 2):  # whichever replica served the start, the other one shows the job too
        row = wait_row(replica_client(scale_stack, index), job_id, "complete")
        assert row.started_by == "demo"
    assert len(ran_on(scale_stack, job_id)) == 1
    webs = [logs(scale_stack.container("web", index)) for index in (1, 2)]
    assert not any("job_started" in line and job_id in line for log in webs for line in log.splitlines())


def test_workers_run_extractions_in_containers_of_their_own(scale_stack):
    web = scale_stack.container("web", 2)
    coord = runs_with_bags(web)[1]
    since = time.time()
    for step in ("download", "extract"):
        done = exec_in(web, *FLASK, "pipeline", step, coord, "--wait", "--json")
        assert done.returncode == 0, done.stderr[-2000:]
    job = json.loads(done.stdout.strip().splitlines()[-1])
    assert job["status"] == "complete" and job["started_by"] == "cli" and job["result"]["frames"] > 0
    assert ran_on(scale_stack, job["id"])
    seen = events(since, f"{EXTRACTOR_LABEL}=extractor")
    assert [event["Action"] for event in seen if event["Action"] in ("create", "start", "destroy")] == [
        "create",
        "start",
        "destroy",
    ]
    # The container was the extraction job's (its labels name the job), and it is gone.
    assert {event["Actor"]["Attributes"]["bagboard.job"] for event in seen} == {job["id"]}


def test_stopping_a_worker_mid_job_leaves_it_interrupted_and_a_retry_succeeds(scale_stack):
    redis = container_ip(scale_stack.container("redis"))
    registry = RedisJobRegistry(f"redis://{redis}:6379/0")
    # Queues on the stack's broker like a web process; its own heartbeat pass stays out of the way.
    runner = JobRunner(registry, builtin_handlers(), broker_url=f"redis://{redis}:6379/1",
                       heartbeat_interval=3600, heartbeat_timeout=7200, retention_s=None)  # fmt: skip
    operator = Actor("ops", Role.OPERATOR)
    viewer = replica_client(scale_stack, 2)
    try:
        job = runner.submit(JobKind.SLEEP, "stop-me", {"seconds": 60, "steps": 60}, operator)
        wait_row(viewer, job.id, "in progress")
        worker = wait_for(lambda: ran_on(scale_stack, job.id, "job_started"), 30, "the job started on a worker")[0]
        docker("stop", "-t", "1", worker)  # SIGTERM, then SIGKILL after a second: the warm shutdown is cut off
        failed = wait_row(viewer, job.id, "failed", timeout=HEARTBEAT_TIMEOUT + 30)
        assert failed.error == "interrupted: the worker running it stopped"
        retry = runner.submit(JobKind.SLEEP, "stop-me", {"seconds": 2, "steps": 4}, operator)
        assert retry.id != job.id
        wait_row(viewer, retry.id, "complete", timeout=60)
        assert ran_on(scale_stack, retry.id) and worker not in ran_on(scale_stack, retry.id)
    finally:
        runner.shutdown()
        registry.close()
