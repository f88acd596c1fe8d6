"""A small streaming HTTP proxy in front of fake-gcs-server for what no emulator does.

Latency per request, a bandwidth cap per connection, 5xx/429/403 bursts, connections dropped
mid-body, bytes damaged in transit, and a record of every request. Plus one shim: the bundled
fake-gcs-server (v1.54) ignores ifGenerationMatch on resumable uploads (fixed upstream later), so
the proxy answers 412 to the finalising request of such an upload, where real GCS checks it.
Tests run it in process; benchmarks run it in a child (ProxyProcess) so it never holds their GIL.
"""

from __future__ import annotations

import http.client
import json
import logging
import multiprocessing
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

MAX_RECORDED_BODY = 64 * 1024
CHUNK = 64 * 1024
_LIST_PATH = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o$")
_UPLOAD_PATH = re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$")
_FINAL_RANGE = re.compile(r"^bytes (?:(?P<first>\d+)-(?P<last>\d+)|\*)/(?P<total>\d+)$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
_REASONS = {403: "forbidden", 404: "notFound", 412: "conditionNotMet", 429: "rateLimitExceeded"}


@dataclass
class RecordedRequest:
    """One request the proxy saw, and the status it answered with."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes  # truncated to MAX_RECORDED_BODY
    status: int | None = None
    started: float = field(default_factory=time.monotonic)  # when the proxy had read the request
    finished: float | None = None  # when the proxy had its reply, after any injected latency

    def param(self, name: str) -> str | None:
        """Return the first value of a query parameter, or None."""
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def is_listing(self) -> bool:
        """Tell whether this was an objects.list call."""
        return self.method == "GET" and bool(_LIST_PATH.match(self.path))

    @property
    def is_upload(self) -> bool:
        """Tell whether this was an upload (media, multipart or resumable) call."""
        return bool(_UPLOAD_PATH.match(self.path))

    @property
    def is_media(self) -> bool:
        """Tell whether this was an object download (alt=media)."""
        return self.method == "GET" and self.param("alt") == "media"

    @property
    def object_name(self) -> str | None:
        """Return the object a single-object request names (from its path), else None."""
        _, sep, rest = self.path.partition("/o/")
        return unquote(rest) if sep else None


Match = Callable[[RecordedRequest], bool]


@dataclass
class _Fault:
    kind: str  # "status", "drop" or "corrupt"
    remaining: int
    match: Match | None
    status: int = 503
    after_bytes: int = 0


@dataclass
class _State:
    latency_s: float = 0.0
    bandwidth: float | None = None  # bytes per second per connection
    faults: list[_Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    resumable: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # upload_id -> bucket, name, generation


class FaultProxy:
    """A threaded, streaming HTTP proxy in front of fake-gcs-server that records and can distort traffic."""

    def __init__(self, upstream: str, port: int = 0, host: str = "127.0.0.1") -> None:
        self.upstream = urlsplit(upstream).netloc or upstream  # "host:port"
        self._state = _State()
        self._lock = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        """Return the proxy's base URL, suitable for STORAGE_EMULATOR_HOST."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    # -- knobs ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget recorded requests and clear every injected behaviour."""
        with self._lock:
            self._state = _State()

    def set_latency(self, seconds: float) -> None:
        """Delay every request by seconds before forwarding it."""
        self._state.latency_s = seconds

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        """Cap each connection's response bytes at this rate (None: no cap)."""
        self._state.bandwidth = bytes_per_second

    def fail_next(self, count: int, status: int = 503, *, match: Match | None = None) -> None:
        """Answer the next count matching requests with status instead of forwarding them."""
        self._add(_Fault("status", count, match, status=status))

    def drop_next(self, count: int, after_bytes: int, *, match: Match | None = None) -> None:
        """Cut the connection of the next count matching replies after after_bytes of their body."""
        self._add(_Fault("drop", count, match, after_bytes=after_bytes))

    def corrupt_next(self, count: int, *, match: Match | None = None) -> None:
        """Flip one byte in the body of the next count matching replies (damage in transit)."""
        self._add(_Fault("corrupt", count, match))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._state.faults.append(fault)

    # -- the record ----------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Return a snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._state.requests)

    def listing_requests(self) -> list[RecordedRequest]:
        """Return the recorded objects.list requests."""
        return [r for r in self.requests if r.is_listing]

    def listing_count(self) -> int:
        """Return how many objects.list requests were recorded."""
        return len(self.listing_requests())

    def upload_requests(self) -> list[RecordedRequest]:
        """Return the recorded upload requests."""
        return [r for r in self.requests if r.is_upload]

    def media_requests(self) -> list[RecordedRequest]:
        """Return the recorded object downloads."""
        return [r for r in self.requests if r.is_media]

    def request_count(self) -> int:
        """Return how many requests were recorded."""
        with self._lock:
            return len(self._state.requests)

    # -- per request ---------------------------------------------------------------------------------

    def _begin(self, record: RecordedRequest) -> tuple[_State, _Fault | None]:
        """Record the request and take the first matching fault (if any)."""
        with self._lock:
            state = self._state
            state.requests.append(record)
            for fault in state.faults:
                if fault.remaining > 0 and (fault.match is None or fault.match(record)):
                    fault.remaining -= 1
                    return state, fault
        return state, None

    def _refuse_resumable(self, state: _State, record: RecordedRequest, headers: dict[str, str]) -> bool:
        """Tell whether the finalising chunk of a guarded resumable upload breaks its precondition."""
        upload_id = record.param("upload_id")
        guarded = state.resumable.get(upload_id or "")
        final = _FINAL_RANGE.match(headers.get("content-range", ""))
        if guarded is None or final is None or record.method != "PUT":
            return False
        if final["last"] is not None and int(final["last"]) + 1 != int(final["total"]):
            return False  # not the last chunk yet
        bucket, name, wanted = guarded
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        try:
            connection.request("GET", f"/storage/v1/b/{bucket}/o/{quote(name, safe='')}")
            reply = connection.getresponse()
            body = reply.read()
        finally:
            connection.close()
        current = int(json.loads(body)["generation"]) if reply.status == 200 else 0
        return current != wanted

    def _remember_resumable(self, state: _State, record: RecordedRequest, body: bytes, location: str) -> None:
        """Keep a resumable session's precondition, to be checked when it finalises."""
        wanted = record.param("ifGenerationMatch")
        match = _UPLOAD_PATH.match(record.path)
        if wanted is None or match is None or record.param("uploadType") != "resumable":
            return
        try:
            name = record.param("name") or json.loads(body or b"{}").get("name")
        except ValueError:
            return
        upload_id = parse_qs(urlsplit(location).query).get("upload_id", [None])[0]
        if name and upload_id:
            with self._lock:
                state.resumable[upload_id] = (match["bucket"], name, int(wanted))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a fan-out opens many connections at once
    proxy: FaultProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool matters
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def do_GET(self) -> None:
        self._proxy()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests read the recording instead."""

    def finish(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
        super().finish()

    def _proxy(self) -> None:
        """Record the request, apply latency and faults, and stream the upstream reply back."""
        proxy = self.server.proxy
        body = self._read_body()
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = RecordedRequest(
            self.command, split.path, parse_qs(split.query, keep_blank_values=True), headers, body[:MAX_RECORDED_BODY]
        )
        state, fault = proxy._begin(record)
        if state.latency_s:
            time.sleep(state.latency_s)
        try:
            if fault is not None and fault.kind == "status":
                self._reply_error(record, fault.status, f"injected HTTP {fault.status} by the fault proxy")
            elif proxy._refuse_resumable(state, record, headers):
                self._reply_error(record, 412, "At least one of the pre-conditions you specified did not hold.")
            else:
                self._forward(state, record, headers, body, fault)
        except Exception as err:  # a proxy bug must surface as a 500, not a hung client
            logging.getLogger(__name__).exception("fault proxy failed")
            if record.status is None:
                self._reply_error(record, 500, f"fault proxy error: {err}")
            self.close_connection = True

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(self.server.proxy.upstream, timeout=120)
        return self._upstream

    def _forward(
        self, state: _State, record: RecordedRequest, headers: dict[str, str], body: bytes, fault: _Fault | None
    ) -> None:
        """Send the request upstream and stream its reply, capped, cut or damaged as asked."""
        send = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            connection = self._connection()
            connection.request(self.command, self.path, body=body or None, headers=send)
            reply = connection.getresponse()
        except (OSError, http.client.HTTPException):
            self._drop_upstream()  # a stale keep-alive connection: one fresh attempt
            connection = self._connection()
            connection.request(self.command, self.path, body=body or None, headers=send)
            reply = connection.getresponse()
        kept = [(k, v) for k, v in reply.getheaders() if k.lower() not in _HOP_BY_HOP]
        length = reply.getheader("Content-Length")
        if length is None:  # chunked upstream (small JSON): buffer it
            payload = reply.read()
            length = str(len(payload))
            chunks: Any = iter([payload])
        else:
            chunks = iter(lambda: reply.read(CHUNK), b"")
        if record.is_upload and reply.status == 200 and record.param("uploadType") == "resumable":
            self.server.proxy._remember_resumable(state, record, body, reply.getheader("Location") or "")
        record.status, record.finished = reply.status, time.monotonic()
        self.send_response(reply.status)
        for name, value in kept:
            self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        self._stream(chunks, state.bandwidth, fault)
        if fault is not None and fault.kind == "drop":
            self._drop_upstream()

    def _stream(self, chunks: Any, bandwidth: float | None, fault: _Fault | None) -> None:
        """Write the body chunks, pacing them to bandwidth; cut or damage them for a fault."""
        sent = 0
        started = time.monotonic()
        corrupt = fault is not None and fault.kind == "corrupt"
        cut = fault.after_bytes if fault is not None and fault.kind == "drop" else None
        for chunk in chunks:
            if corrupt and chunk:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                corrupt = False
            if cut is not None and sent + len(chunk) >= cut:
                self.wfile.write(chunk[: max(0, cut - sent)])
                self.wfile.flush()
                # Reset rather than close: the client sees a dropped connection, not a clean short body.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.close_connection = True
                return
            self.wfile.write(chunk)
            sent += len(chunk)
            if bandwidth:
                ahead = started + sent / bandwidth - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    def _drop_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def _reply_error(self, record: RecordedRequest, status: int, message: str) -> None:
        """Send a GCS-shaped JSON error."""
        detail = {"reason": _REASONS.get(status, "backendError"), "message": message}
        payload = json.dumps({"error": {"code": status, "message": message, "errors": [detail]}}).encode()
        record.status, record.finished = status, time.monotonic()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        """Read a Content-Length or chunked request body."""
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(parts)
        return b""


class ProxyProcess:
    """Run a FaultProxy in a child process and call its knobs by name (benchmarks)."""

    def __init__(self, upstream: str, port: int = 0) -> None:
        context = multiprocessing.get_context("spawn")  # no inherited threads or locks
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, upstream, port), daemon=True)
        self.url = ""

    def start(self) -> ProxyProcess:
        """Start the child and wait until it listens."""
        self._process.start()
        self.url = self._conn.recv()
        return self

    def call(self, method: str, *args: Any) -> Any:
        """Call a FaultProxy method in the child, e.g. call('set_latency', 0.03)."""
        self._conn.send((method, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"{method} failed in the proxy process: {value}")
        return value

    def stop(self) -> None:
        """Ask the child to stop, then reap it."""
        if self._process.is_alive():
            self._conn.send(None)
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(conn: Any, upstream: str, port: int) -> None:
    """Child process body: serve a FaultProxy and run the calls sent over conn until None."""
    proxy = FaultProxy(upstream, port).start()
    conn.send(proxy.url)
    while (message := conn.recv()) is not None:
        method, args = message
        try:
            conn.send(("ok", getattr(proxy, method)(*args)))
        except Exception as err:  # report, keep serving
            conn.send(("error", repr(err)))
    proxy.stop()
