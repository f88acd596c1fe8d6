"""A real scale-out stack for tests: redis-server, Celery workers and gunicorn web processes, all on 127.0.0.1.

Every process runs in its own session (process group), so stopping one also ends its children (gunicorn's
worker, Celery's pool) and nothing outlives the test session. Clients talk to the web processes the way a
browser does: the login form with its CSRF token, then Dash callbacks through /_dash-update-component,
with the callback specs read from /_dash-dependencies.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
import requests

from tests.helpers import callback_body, wait_for

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REDIS_SERVER = Path("/usr/bin/redis-server")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """One long-running child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Service:
        """Start the process (its own session, so signals reach its children too)."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def running(self) -> bool:
        """Tell whether the process is still alive."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Return everything the process has written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the log, for failure messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def check_alive(self) -> None:
        """Fail with the log's tail if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}; last output:\n{self.log_tail()}")

    def signal_group(self, signum: int) -> None:
        """Send signum to the process and every child in its group."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crashed host or the OOM killer would."""
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the group, kill it if it lingers, and close the log."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.signal_group(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.signal_group(signal.SIGKILL)
                    self.proc.wait(timeout=10)
            # Children the leader left behind (a gunicorn worker, a pool process) go too.
            self.signal_group(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


def start_redis(binary: str, log_path: Path, timeout: float = 10.0) -> tuple[Service, str]:
    """Start a throwaway redis-server (no persistence, loopback only) and return it with its base URL."""
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    service = Service("redis-server", args, os.environ, log_path).start()
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url + "/0")

    def answers() -> bool:
        service.check_alive()
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, timeout, f"redis-server on port {port} answering PING", interval=0.02)
    except BaseException:
        service.stop()
        raise
    finally:
        client.close()
    return service, url


def start_worker(env: Mapping[str, str], log_path: Path, node: str) -> Service:
    """Start a Celery worker on the broker in env (thread pool, two jobs at once)."""
    args = [
        str(BIN / "celery"),
        "-A",
        "src.jobs.celery_app",
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        "2",
        "--loglevel",
        "info",
        "--hostname",
        f"{node}@127.0.0.1",
        # One worker needs no cluster chatter; skipping it also makes start-up quicker.
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    return Service(f"celery worker {node}", args, env, log_path).start()


def wait_worker_ready(worker: Service, node: str, timeout: float = 45.0) -> None:
    """Wait until the worker has connected to the broker and logged that it is ready."""

    def ready() -> bool:
        worker.check_alive()
        return f"{node}@127.0.0.1 ready." in worker.log()

    try:
        wait_for(ready, timeout, f"{worker.name} ready")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last output:\n{worker.log_tail()}") from None


def start_web(env: Mapping[str, str], log_path: Path, name: str) -> tuple[Service, str]:
    """Start `gunicorn app:server -c gunicorn.conf.py` with one worker on a free loopback port."""
    port = free_port()
    web_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4"}
    # Two masters on one host would fight over gunicorn's default control socket path.
    args = [str(BIN / "gunicorn"), "app:server", "-c", "gunicorn.conf.py", "--no-control-socket"]
    return Service(f"web {name}", args, web_env, log_path).start(), f"http://127.0.0.1:{port}"


def wait_web_ready(web: Service, base_url: str, timeout: float = 45.0) -> None:
    """Wait until the web process answers /healthz."""

    def healthy() -> bool:
        web.check_alive()
        try:
            return requests.get(base_url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(healthy, timeout, f"{web.name} answering /healthz", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last output:\n{web.log_tail()}") from None


# -- talking to a web process like a browser ------------------------------------------------------


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


class DashClient:
    """A signed-in browser session on one web process: log in, then call Dash callbacks by their outputs."""

    def __init__(self, base_url: str, label: str) -> None:
        self.base_url = base_url
        self.label = label
        self.http = requests.Session()
        self._specs: list[dict[str, Any]] | None = None

    def login(self, username: str, password: str) -> None:
        """Sign in through the login form, CSRF token included."""
        form = self.http.get(f"{self.base_url}/login", timeout=10)
        match = CSRF_INPUT.search(form.text)
        assert form.status_code == 200 and match, f"{self.label}: no login form ({form.status_code})"
        response = self.http.post(
            f"{self.base_url}/login",
            data={"username": username, "password": password, "csrf_token": match.group(1), "next": "/"},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, f"{self.label}: sign-in as {username} gave {response.status_code}"

    def specs(self) -> list[dict[str, Any]]:
        """Return the callback specs the browser loads from /_dash-dependencies."""
        if self._specs is None:
            response = self.http.get(f"{self.base_url}/_dash-dependencies", timeout=10)
            assert response.status_code == 200, f"{self.label}: /_dash-dependencies gave {response.status_code}"
            self._specs = response.json()
        return self._specs

    def find(self, output: str, via: str | None = None) -> dict[str, Any]:
        """Return the spec of the callback with output ('id.prop') among its outputs (and input via)."""
        for spec in self.specs():
            outputs = [part.split("@")[0] for part in spec["output"].strip(".").split("...")]
            inputs = [f"{item['id']}.{item['property']}" for item in spec["inputs"]]
            if output in outputs and (via is None or via in inputs):
                return spec
        raise KeyError(f"{self.label}: no callback outputs {output}")

    def call(
        self, output: str, values: Mapping[str, Any], *, triggered: str | None = None, via: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Fire the callback producing output as the browser does and return its response by id and property.

        values maps 'id.prop' (the id as /_dash-dependencies spells it) to the value the browser would send.
        A callback that prevents its update returns {}.
        """
        spec = self.find(output, via)
        body = callback_body(spec["output"], spec, values, triggered)
        response = self.http.post(f"{self.base_url}/_dash-update-component", json=body, timeout=30)
        if response.status_code == 204:
            return {}
        assert response.status_code == 200, f"{self.label}: {output} gave {response.status_code}: {response.text}"
        return response.json()["response"]

    # -- the callbacks the tests use ------------------------------------------------------------

    def run_table(self) -> list[dict[str, Any]]:
        """Return the download manager's run table (show_overview)."""
        response = self.call("dm-grid.rowData", {}, triggered="dm-finished-jobs.data")
        return response["dm-grid"]["rowData"]

    def start_download(self, coordinate: str, policy: str = "skip") -> str:
        """Tick one run in the table and press Download (start_download); return the message shown."""
        response = self.call(
            "dm-action-msg.children",
            {
                "dm-start-download.n_clicks": 1,
                "dm-grid.selectedRows": [{"coordinate": coordinate}],
                "dm-conflict.value": policy,
            },
            via="dm-start-download.n_clicks",
        )
        return response["dm-action-msg"]["children"]

    def jobs(self) -> dict[str, JobRow]:
        """Return the jobs list as the download manager's Jobs tab shows it (show_jobs), by job id."""
        response = self.call("dm-jobs.children", {"dm-jobs-tick.n_intervals": 1, "dm-finished-jobs.data": None})
        return {row.id: row for row in job_rows(response["dm-jobs"]["children"])}

    def home_run_count(self) -> int:
        """Return the run count the home page's run analysis card shows (fill_cards)."""
        response = self.call("home-run-analysis-figure.children", {"url.pathname": "/"})
        text = response["home-run-analysis-figure"]["children"]
        match = re.fullmatch(r"([\d,]+) runs", text)
        assert match, f"{self.label}: the home card shows {text!r}"
        return int(match.group(1).replace(",", ""))

    def start_inventory_refresh(self) -> str:
        """Press Refresh inventory on the coverage view (start_refresh, admins only); return the job id."""
        response = self.call("cov-refresh-job.data", {"cov-refresh.n_clicks": 1})
        return response["cov-refresh-job"]["data"]

    def refresh_status(self, job_id: str) -> str:
        """Poll the refresh like the coverage view's interval does (poll_refresh); return the status line."""
        response = self.call("cov-refreshed.data", {"cov-refresh-tick.n_intervals": 1, "cov-refresh-job.data": job_id})
        return response["cov-refresh-status"]["children"]


@dataclass(frozen=True)
class JobRow:
    """One job as the Jobs tab renders it."""

    id: str
    status: str  # the badge: "pending", "in progress", "complete", "failed", …
    kind: str
    target: str
    started_by: str
    detail: str  # "3/8 files · step 3 of 8"
    error: str


def job_rows(children: Any) -> list[JobRow]:
    """Read the rendered job rows (components carrying data-job) out of the jobs list's JSON."""
    rows = []
    for node in _walk(children):
        props = node.get("props", {})
        if "data-job" not in props:
            continue
        header, _progress, detail, error = props["children"]
        status, kind, target, by = (_text(part) for part in header["props"]["children"][:4])
        rows.append(
            JobRow(
                id=props["data-job"],
                status=status,
                kind=kind,
                target=target,
                started_by=by.removeprefix("by "),
                detail=_text(detail),
                error=_text(error),
            )
        )
    return rows


def _walk(node: Any) -> list[dict[str, Any]]:
    """Return every component in a serialised component tree, depth first."""
    if isinstance(node, list):
        return [found for child in node for found in _walk(child)]
    if isinstance(node, dict) and "props" in node:
        return [node, *_walk(node["props"].get("children"))]
    return []


def _text(node: Any) -> str:
    """Return the visible text of a serialised component (its string children, joined)."""
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list):
        return " ".join(filter(None, (_text(child) for child in node)))
    if isinstance(node, dict):
        return _text(node.get("props", {}).get("children"))
    return ""
