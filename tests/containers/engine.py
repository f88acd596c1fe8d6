"""Small helpers for tests against a real Docker engine: containers, health, events, compose projects."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import requests

from tests.containers.images import APP_IMAGE, REPO, docker

# The image's own health command, polled every second: tests that only need "up" wait 1 s, not 10.
FAST_HEALTH = ("--health-interval", "1s", "--health-start-period", "60s")
SECRET = "container-test-secret-" + "x" * 32
# Production needs buckets: local ones on the data volume keep these tests off any GCS.
APP_ENV = {
    "BAGBOARD_SECRET_KEY": SECRET,
    "BAGBOARD_RAW_BUCKET": "file:///data/buckets/raw",
    "BAGBOARD_ML_BUCKET": "file:///data/buckets/ml",
}


def unique(stem: str) -> str:
    """Return a name no other test run on this engine uses."""
    return f"bbt-{stem}-{uuid.uuid4().hex[:8]}"


def socket_gid() -> str:
    """Return the group id owning the engine's socket (what the non-root app user needs)."""
    return str(os.stat("/var/run/docker.sock").st_gid)


def inspect(name: str) -> dict:
    """Return docker inspect's record of a container."""
    return json.loads(docker("inspect", name).stdout)[0]


def health(name: str) -> str:
    """Return the container's health status (starting, healthy, unhealthy) or its state if it has none."""
    state = inspect(name)["State"]
    return state.get("Health", {}).get("Status") or state["Status"]


def wait_healthy(name: str, timeout: float = 180.0) -> float:
    """Wait until the container is healthy; return the seconds it took. Fail with its log if it dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status = health(name)
        if status == "healthy":
            return time.monotonic() - started
        if status in ("exited", "dead", "unhealthy"):
            break
        time.sleep(0.5)
    raise AssertionError(f"{name} is {health(name)} after {time.monotonic() - started:.0f} s:\n{logs(name)[-3000:]}")


def logs(name: str) -> str:
    """Return a container's stdout and stderr."""
    proc = docker("logs", name, check=False)
    return proc.stdout + proc.stderr


def host_port(name: str, port: int = 8050) -> int:
    """Return the loopback port the engine published for the container's port."""
    out = docker("port", name, f"{port}/tcp").stdout.split()[0]
    return int(out.rsplit(":", 1)[1])


def container_ip(name: str) -> str:
    """Return the container's address on its (first) network; the host reaches bridge networks directly."""
    networks = inspect(name)["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


def wait_http(url: str, timeout: float = 120.0) -> requests.Response:
    """Wait until url answers 200 and return the response."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=5)
            if response.status_code == 200:
                return response
            last = response.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer 200 within {timeout:.0f} s (last: {last})")


def run_app(
    name: str, volume: str, env: Mapping[str, str] = (), args: tuple[str, ...] = (), image: str = APP_IMAGE
) -> str:
    """Start the app image detached with its data on volume, published on a loopback port; return the name."""
    argv = ["run", "-d", "--name", name, "-v", f"{volume}:/data", "-p", "127.0.0.1::8050", *args]
    for key, value in {**APP_ENV, **dict(env)}.items():
        argv += ["-e", f"{key}={value}"]
    docker(*argv, image)
    return name


def remove(*names: str) -> None:
    """Remove containers (running or not), ignoring unknown ones."""
    if names:
        docker("rm", "-f", "-v", *names, check=False)


def exec_in(name: str, *command: str, env: Mapping[str, str] = (), stdin: str | None = None, timeout: float = 600):
    """Run a command in a running container and return the finished process."""
    argv = ["exec", "-i"]
    for key, value in dict(env).items():
        argv += ["-e", f"{key}={value}"]
    return docker(*argv, name, *command, check=False, input=stdin or "", timeout=timeout)


def events(since: float, label: str, until: float | None = None) -> list[dict]:
    """Return the engine's container events since a time (epoch s) for containers with a label."""
    until = until or time.time()
    out = docker(
        "events", "--since", f"{since:.3f}", "--until", f"{until:.3f}", "--filter", "type=container",
        "--filter", f"label={label}", "--format", "{{json .}}",
    ).stdout  # fmt: skip
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def containers_with(label: str, status: str | None = None) -> list[str]:
    """Return the ids of containers carrying a label, in any state or only in status (created, running, …)."""
    states = ["--filter", f"status={status}"] if status else []
    return docker("ps", "-aq", "--filter", f"label={label}", *states).stdout.split()


class Compose:
    """One docker-compose project on the repository's compose file, with its own ports and volume."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.project = unique("compose").replace("-", "")
        self.env = {**os.environ, "COMPOSE_PROJECT_NAME": self.project, **env}

    def __call__(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run docker-compose with the project's environment."""
        proc = subprocess.run(
            ["docker-compose", "-f", str(REPO / "docker-compose.yml"), *args],
            capture_output=True, text=True, env=self.env, cwd=REPO, timeout=timeout, check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            output = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{output}")
        return proc

    def container(self, service: str, index: int = 1) -> str:
        """Return the container name of a service's replica (compose 1.29 naming)."""
        return f"{self.project}_{service}_{index}"

    def down(self) -> None:
        """Stop and remove the project's containers, network and volume."""
        self("--profile", "scale", "down", "-v", "--remove-orphans", "-t", "5", check=False)


@contextmanager
def compose_project(env: Mapping[str, str]) -> Iterator[Compose]:
    """Yield a compose project and take it down afterwards (its logs go to the failure report first)."""
    project = Compose(env)
    try:
        yield project
    finally:
        project.down()
