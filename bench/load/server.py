"""Start and stop `gunicorn app:server` with the shipped gunicorn.conf.py, and read its CPU time and access log."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load.prepare import ROOT, clean_env

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
PROBLEM_MARKS = ('"level": "error"', '"level": "critical"', "[error]", "[critical]", "traceback")
START_TIMEOUT_S = 180.0  # four workers each loading the 1M-object snapshot on two busy cores take a while


@dataclass
class Server:
    """A running gunicorn we started: its process, address and log file."""

    proc: subprocess.Popen
    base: str
    log_path: Path
    workers: int
    threads: int
    env: dict[str, str] = field(repr=False)

    @property
    def port(self) -> int:
        """Return the port gunicorn listens on."""
        return int(self.base.rsplit(":", 1)[1])


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(data_root: Path, port: int, workers: int, threads: int) -> dict[str, str]:
    """Return production settings for the server: explicit buckets, a secret key, JSON logs, no refresh."""
    return clean_env(
        BAGBOARD_ENV="production",
        BAGBOARD_SECRET_KEY="load-test-secret-" + os.urandom(16).hex(),
        BAGBOARD_DATA_ROOT=str(data_root),
        BAGBOARD_RAW_BUCKET=f"file://{data_root / 'buckets' / 'raw'}",
        BAGBOARD_ML_BUCKET=f"file://{data_root / 'buckets' / 'ml'}",
        BAGBOARD_CACHE_TYPE="FileSystemCache",
        BAGBOARD_LOG_FORMAT="json",
        BAGBOARD_LOG_LEVEL="INFO",
        # The synthetic root has empty buckets: a refresh would replace the 1M-object snapshot with nothing, and
        # on the demo it would add a bucket listing in the middle of the measurement.
        BAGBOARD_INVENTORY_REFRESH_ON_START="false",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=str(workers),
        GUNICORN_THREADS=str(threads),
    )


def start(data_root: Path, workers: int, threads: int, log_path: Path) -> Server:
    """Start gunicorn on a free loopback port and wait until every worker has built its app."""
    port = free_port()
    env = server_env(data_root, port, workers, threads)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = log_path.open("wb")
    # cwd = repo root, so gunicorn reads the shipped gunicorn.conf.py; its own session keeps Ctrl-C (sent to our
    # process group) from killing it before we have stopped the clients and read its CPU time.
    proc = subprocess.Popen(
        [str(gunicorn), "app:server"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,  # safe: this process runs no threads of its own
    )
    log.close()
    server = Server(proc, f"http://127.0.0.1:{port}", log_path, workers, threads, env)
    try:
        wait_ready(server)
    except BaseException:
        stop(server)
        raise
    return server


def die_with_parent() -> None:
    """Ask the kernel to TERM this (forked) process when the load tool dies, even by SIGKILL."""
    # Without glibc there is no prctl; the finally blocks in run.py still stop the server.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def wait_ready(server: Server) -> None:
    """Wait for /healthz and for one app_created log line per worker (preload_app is off)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    healthy = False
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.proc.returncode}; see {server.log_path}")
        if not healthy:
            try:
                with urllib.request.urlopen(server.base + "/healthz", timeout=2) as response:  # noqa: S310 (loopback)
                    healthy = response.status == 200
            except OSError:
                pass
        if healthy and server.log_path.read_bytes().count(b'"app_created"') >= server.workers:
            return
        time.sleep(0.25)
    raise SystemExit(f"gunicorn was not ready within {START_TIMEOUT_S:.0f} s; see {server.log_path}")


def stop(server: Server) -> None:
    """Stop the gunicorn we started, by its pid: TERM (graceful), then KILL."""
    proc = server.proc
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=35)  # graceful_timeout is 30 s in gunicorn.conf.py
    except subprocess.TimeoutExpired:
        # Workers left behind by a killed master would keep the port; they share its session (process group).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_pids(master: int) -> list[int]:
    """Return the master's child processes (gunicorn's workers)."""
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
        return [int(pid) for pid in text.split()]
    except OSError:  # kernels without CONFIG_PROC_CHILDREN: scan /proc for the parent pid
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int(stat_fields(int(entry.name))[1]) == master:
                        pids.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    continue
        return pids


def stat_fields(pid: int) -> list[str]:
    """Return /proc/<pid>/stat fields from the state on (the command name may hold spaces)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """Return user + system CPU seconds of one process."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of the full line)


def server_cpu(server: Server) -> dict[int, float]:
    """Return CPU seconds per process of the gunicorn tree (master and workers)."""
    out = {}
    for pid in (server.proc.pid, *worker_pids(server.proc.pid)):
        try:
            out[pid] = cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return out


def connections_per_worker(server: Server) -> dict[int, int]:
    """Return how many established client connections each worker holds (gthread keeps a connection on one worker)."""
    port = f"{server.port:04X}"
    established = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].rsplit(":", 1)[1] == port and fields[3] == "01":  # local port, ESTABLISHED
                    established.add(fields[9])  # socket inode
    counts = {}
    for pid in worker_pids(server.proc.pid):
        inodes = set()
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        counts[pid] = len(inodes & established)
    return counts


def machine_cpu() -> tuple[float, float]:
    """Return (busy, total) CPU seconds of the whole machine from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(values)
    idle = values[3] + values[4]  # idle + iowait
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def access_durations(log_path: Path, prefix: str) -> dict[str, tuple[float, int]]:
    """Return {request id: (server duration ms, status)} of the access lines whose request id starts with prefix."""
    out: dict[str, tuple[float, int]] = {}
    with log_path.open("rb") as log:
        for line in log:
            if not line.startswith(b"{") or b'"http_request"' not in line:
                continue
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            request_id = entry.get("request_id") or ""
            if request_id.startswith(prefix):
                out[request_id] = (float(entry.get("duration_ms") or 0.0), int(entry.get("status") or 0))
    return out


def log_problems(log_path: Path, limit: int = 5) -> list[str]:
    """Return up to limit warning/error lines from the server log (tracebacks, worker timeouts)."""
    found = []
    with log_path.open("rb") as log:
        for raw in log:
            line = raw.decode(errors="replace").rstrip()
            lowered = line.lower()
            if any(mark in lowered for mark in PROBLEM_MARKS):
                found.append(line[:300])
                if len(found) >= limit:
                    break
    return found
