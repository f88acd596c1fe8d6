"""The production image on a real engine: non-root, healthy, fails loudly without a secret, stops on SIGTERM,
keeps its data on the volume."""

from __future__ import annotations

import time

from tests.containers.engine import (
    FAST_HEALTH,
    docker,
    exec_in,
    host_port,
    inspect,
    logs,
    remove,
    run_app,
    unique,
    wait_healthy,
    wait_http,
)

GRACE_S = 30  # gunicorn.conf.py's graceful_timeout; docker stop waits this long before SIGKILL


def test_the_image_runs_as_non_root_and_becomes_healthy(images, volume, cleanup):
    name = run_app(unique("app"), volume)
    cleanup.append(name)
    seconds = wait_healthy(name)
    assert exec_in(name, "id", "-u").stdout.strip() == "10001"
    assert inspect(name)["Config"]["User"] == "bagboard"
    login = wait_http(f"http://127.0.0.1:{host_port(name)}/login")
    assert "csrf_token" in login.text
    print(f"healthy after {seconds:.1f} s")  # the figure docs/deployment.md quotes


def test_production_without_a_secret_exits_with_the_configuration_problem(images, volume, cleanup):
    name = unique("nosecret")
    cleanup.append(name)
    docker("run", "--name", name, "-v", f"{volume}:/data", "-e", "BAGBOARD_CACHE_TYPE=nonsense", images.app,
           check=False, timeout=120)  # fmt: skip
    state = inspect(name)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] != 0
    output = logs(name)
    assert "invalid configuration" in output and "BAGBOARD_SECRET_KEY is required in production" in output
    assert "BAGBOARD_CACHE_TYPE" in output  # every problem at once, not the first only


def test_sigterm_stops_the_app_within_the_grace_period(images, volume, cleanup):
    name = run_app(unique("stop"), volume, args=FAST_HEALTH)
    cleanup.append(name)
    wait_healthy(name)
    started = time.monotonic()
    docker("stop", "-t", str(GRACE_S), name, timeout=GRACE_S + 30)
    took = time.monotonic() - started
    state = inspect(name)["State"]
    assert took < GRACE_S, f"stopped after {took:.1f} s: the engine had to SIGKILL it"
    assert state["ExitCode"] == 0 and not state["OOMKilled"]


def test_data_on_the_volume_survives_replacing_the_container(images, volume, cleanup):
    first = run_app(unique("first"), volume, args=FAST_HEALTH)
    cleanup.append(first)
    wait_healthy(first)
    add = ("flask", "--app", "app", "users", "add", "ops", "--role", "operator")
    added = exec_in(first, *add, stdin="ops-password-1\n")
    assert added.returncode == 0, added.stderr
    remove(first)

    second = run_app(unique("second"), volume, args=FAST_HEALTH)
    cleanup.append(second)
    wait_healthy(second)
    listed = exec_in(second, "flask", "--app", "app", "users", "list")
    assert "ops\toperator" in listed.stdout
