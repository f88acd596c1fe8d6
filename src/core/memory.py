"""Hand memory freed by large queries back to the OS, so a web worker's RSS reflects what it keeps."""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time

import pyarrow as pa
from flask import Flask, Response

TRIM_INTERVAL = 10.0  # seconds between trims: malloc_trim walks the heap (a few ms), so not after every request


def release_memory() -> None:
    """Return freed buffers of arrow's pool and of glibc's heap to the OS."""
    # An unfiltered query over 250,000 runs allocates and frees hundreds of MB of temporaries; arrow's pool and
    # glibc both keep freed pages by default, which would stay charged to every gunicorn worker.
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def register_memory_trim(server: Flask, interval: float = TRIM_INTERVAL) -> None:
    """Trim at most once per interval, after a response, on the thread that served it."""
    state = {"last": time.monotonic()}
    lock = threading.Lock()

    @server.after_request
    def trim(response: Response) -> Response:
        now = time.monotonic()
        if now - state["last"] >= interval and lock.acquire(blocking=False):
            try:
                state["last"] = now
                release_memory()
            finally:
                lock.release()
        return response
