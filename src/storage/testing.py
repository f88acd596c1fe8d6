"""Test and benchmark support: a GCS emulator behind a recording, fault-injecting proxy.

Not used by the application; needs the dev dependency gcp-storage-emulator. The proxy adds what
the emulator lacks so client behaviour can be checked: request recording, list pagination with
``fields`` masks, ``ifGenerationMatch`` enforcement on uploads, latency and 5xx/429/403 injection.
EmulatorStack runs both in this process (tests); StackProcess runs one in a child (benchmark).
"""

from __future__ import annotations

import base64
import gc
import http.client
import itertools
import json
import logging
import multiprocessing
import re
import socket
import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

DEFAULT_BUCKET = "bagboard-test"
MAX_RECORDED_BODY = 64 * 1024
_LIST_PATH = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o$")
_UPLOAD_PATH = re.compile(r"^/upload/storage/v1/b/(?P<bucket>[^/]+)/o$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
_REASONS = {403: "forbidden", 412: "conditionNotMet", 429: "rateLimitExceeded", 503: "backendError"}


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class RecordedRequest:
    """One request the proxy saw, and the status it answered with."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes  # truncated to MAX_RECORDED_BODY
    status: int | None = None
    started: float = field(default_factory=time.monotonic)  # when the proxy read the request
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


@dataclass
class _Fault:
    remaining: int
    status: int
    match: Callable[[RecordedRequest], bool] | None


@dataclass
class _ProxyState:
    latency_s: float = 0.0
    page_size: int | None = None  # None: pass listings through unpaginated, as the emulator does
    enforce_preconditions: bool = True
    faults: list[_Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)


class RecordingProxy:
    """A threaded HTTP proxy in front of the emulator that records and can distort traffic."""

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 0,
        lister: Callable[[str, dict[str, list[str]]], dict[str, Any] | _Reply] | None = None,
    ) -> None:
        self.upstream = upstream  # "host:port" of the emulator
        self._lister = lister  # optional direct access to the emulator's listing, see _full_listing
        self._state = _ProxyState()
        self._lock = threading.Lock()
        # The emulator serves one request at a time and has a 5-deep listen backlog; queueing
        # here avoids dropped SYNs (1 s retransmits) and costs nothing.
        self._upstream_lock = threading.Lock()
        self.writes = 0  # requests other than GET forwarded so far: they may have changed names
        self._snapshots: OrderedDict[str, list[tuple[str, dict[str, Any] | None]]] = OrderedDict()
        self._snapshot_ids = itertools.count(1)
        self._server = _ProxyServer((host, port), _ProxyHandler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="gcs-proxy", daemon=True)

    @property
    def url(self) -> str:
        """Return the proxy's base URL, suitable for STORAGE_EMULATOR_HOST."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingProxy:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    # -- knobs for tests ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget recorded requests and clear every injected behaviour."""
        with self._lock:
            self._state = _ProxyState()
            self._snapshots.clear()

    def set_latency(self, seconds: float) -> None:
        """Delay every request by seconds before forwarding it."""
        self._state.latency_s = seconds

    def set_page_size(self, page_size: int | None) -> None:
        """Paginate object listings at page_size entries (items + prefixes), or pass them through."""
        self._state.page_size = page_size

    def set_enforce_preconditions(self, enforce: bool) -> None:
        """Answer 412 when an upload's ifGenerationMatch does not hold (as real GCS does)."""
        self._state.enforce_preconditions = enforce

    def fail_next(
        self, count: int, status: int = 503, *, match: Callable[[RecordedRequest], bool] | None = None
    ) -> None:
        """Answer the next count requests (that match) with status instead of forwarding them."""
        # Filter with match: the client library also sends background bucket GETs of its own.
        with self._lock:
            self._state.faults.append(_Fault(count, status, match))

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

    # -- request handling --------------------------------------------------------------------

    def _handle(self, record: RecordedRequest, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Decide the reply for one request: fault, 412, paginated listing or plain forward."""
        with self._lock:
            self._state.requests.append(record)
            state = self._state
        if state.latency_s:
            time.sleep(state.latency_s)
        fault = self._take_fault(record)
        if fault is not None:
            return _error_reply(fault, f"injected HTTP {fault} by the test proxy")
        if record.is_listing and state.page_size is not None:
            return self._paginated_listing(record, state.page_size)
        with self._upstream_lock:
            if record.method != "GET":
                self.writes += 1  # under the lock, so no listing sees the count before the change
            if state.enforce_preconditions and record.is_upload:
                refused = self._check_generation(record, body)
                if refused is not None:
                    return refused
            return self._forward(record.method, raw_path, headers, body)

    def _take_fault(self, record: RecordedRequest) -> int | None:
        """Consume one matching injected fault and return its status."""
        with self._lock:
            for fault in self._state.faults:
                if fault.remaining > 0 and (fault.match is None or fault.match(record)):
                    fault.remaining -= 1
                    return fault.status
        return None

    def _forward(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        """Send the request to the emulator unchanged and return its reply."""
        connection = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            send_headers = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            connection.request(method, raw_path, body=body or None, headers=send_headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            return _Reply(response.status, kept, payload)
        finally:
            connection.close()

    def _check_generation(self, record: RecordedRequest, body: bytes) -> _Reply | None:
        """Return a 412 reply when ifGenerationMatch does not match the stored generation."""
        wanted = record.param("ifGenerationMatch")
        if wanted is None or record.param("upload_id") is not None:
            return None  # resumable chunks were checked when the session was created
        match = _UPLOAD_PATH.match(record.path)
        name = record.param("name") or _multipart_object_name(body, record.headers.get("content-type", ""))
        if match is None or name is None:
            return None
        path = f"/storage/v1/b/{match['bucket']}/o/{quote(name, safe='')}"
        current = self._forward("GET", path, {}, b"")
        generation = json.loads(current.body)["generation"] if current.status == 200 else "0"
        if int(generation) != int(wanted):
            return _error_reply(412, "At least one of the pre-conditions you specified did not hold.")
        return None

    def _full_listing(self, record: RecordedRequest) -> dict[str, Any] | _Reply:
        """Return the emulator's complete, unpaginated answer to a listing (or its error reply)."""
        query = {k: v for k, v in record.query.items() if k not in ("pageToken", "maxResults", "fields")}
        with self._upstream_lock:
            if self._lister is not None:
                # In process: skip the JSON round trip of every full resource, which would
                # otherwise dominate a benchmark that is meant to measure the client.
                return self._lister(_LIST_PATH.match(record.path)["bucket"], query)  # type: ignore[index]
            full = self._forward("GET", f"{record.path}?{urlencode(query, doseq=True)}", {}, b"")
        if full.status != 200:
            return full
        return json.loads(full.body)

    def _paginated_listing(self, record: RecordedRequest, page_size: int) -> _Reply:
        """Serve one page of a listing from a snapshot of the emulator's full answer."""
        token = record.param("pageToken")
        limit = min(int(record.param("maxResults") or 1000), page_size, 1000)
        if token:
            snapshot_id, _, offset_text = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
            with self._lock:
                entries = self._snapshots.get(snapshot_id)
            if entries is None:
                return _error_reply(400, "Invalid page token.")
            offset = int(offset_text)
        else:
            full = self._full_listing(record)
            if isinstance(full, _Reply):
                return full
            entries = _merge_entries(full)
            snapshot_id, offset = str(next(self._snapshot_ids)), 0
        page = entries[offset : offset + limit]
        answer: dict[str, Any] = {"kind": "storage#objects"}
        items = [resource for _name, resource in page if resource is not None]
        prefixes = [name for name, resource in page if resource is None]
        # Real GCS omits empty arrays; clients must cope with that.
        if items:
            answer["items"] = items
        if prefixes:
            answer["prefixes"] = prefixes
        with self._lock:
            if offset + limit < len(entries):
                self._snapshots[snapshot_id] = entries
                while len(self._snapshots) > 256:  # abandoned listings must not pile up
                    self._snapshots.popitem(last=False)
                next_token = f"{snapshot_id}:{offset + limit}".encode()
                answer["nextPageToken"] = base64.urlsafe_b64encode(next_token).decode()
            else:
                self._snapshots.pop(snapshot_id, None)
        fields = record.param("fields")
        if fields:
            answer = project_fields(answer, parse_fields(fields))
        return _Reply(200, [("Content-Type", "application/json")], json.dumps(answer).encode())


@dataclass
class _Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _error_reply(status: int, message: str) -> _Reply:
    """Build a GCS-shaped JSON error reply."""
    reason = _REASONS.get(status, "error")
    detail = {"reason": reason, "message": message}
    error = {"error": {"code": status, "message": message, "errors": [detail]}}
    return _Reply(status, [("Content-Type", "application/json")], json.dumps(error).encode())


def _merge_entries(listing: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """Merge items and prefixes into one name-sorted list; GCS pages count both toward maxResults."""
    entries: list[tuple[str, dict[str, Any] | None]] = [(i["name"], i) for i in listing.get("items") or []]
    entries += [(p, None) for p in listing.get("prefixes") or []]
    entries.sort(key=lambda entry: entry[0])
    return entries


def _multipart_object_name(body: bytes, content_type: str) -> str | None:
    """Pull the object name out of a multipart upload's JSON metadata part."""
    if not content_type.startswith("multipart/"):
        return None
    match = re.search(rb"\r?\n\r?\n(\{.*?\})\r?\n--", body, re.DOTALL)
    if match is None:
        return None
    return json.loads(match.group(1)).get("name")


def parse_fields(spec: str) -> dict[str, dict[str, Any]]:
    """Parse a partial-response mask like 'items(name,size),nextPageToken' into a tree."""
    tree, rest = _parse_field_list(spec.replace(" ", ""))
    if rest:
        raise ValueError(f"unbalanced fields mask {spec!r}")
    return tree


def _parse_field_list(spec: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Parse comma-separated fields up to an unmatched ')' and return the remainder."""
    tree: dict[str, dict[str, Any]] = {}
    while spec and not spec.startswith(")"):
        name = re.match(r"[A-Za-z0-9_]*", spec).group(0)  # type: ignore[union-attr]
        spec = spec[len(name) :]
        children: dict[str, dict[str, Any]] = {}
        if spec.startswith("("):
            children, spec = _parse_field_list(spec[1:])
            if not spec.startswith(")"):
                raise ValueError("unbalanced fields mask")
            spec = spec[1:]
        tree[name] = children
        spec = spec.removeprefix(",")
    return tree, spec


def project_fields(value: Any, tree: dict[str, dict[str, Any]]) -> Any:
    """Keep only the fields in tree, applying sub-masks to nested objects and lists."""
    if isinstance(value, list):
        if tree and not any(tree.values()):  # flat mask over a list of resources: the hot path
            keys = tuple(tree)
            return [{k: item[k] for k in keys if k in item} if isinstance(item, dict) else item for item in value]
        return [project_fields(item, tree) for item in value]
    if not isinstance(value, dict) or not tree:
        return value
    return {key: project_fields(value[key], sub) for key, sub in tree.items() if key in value}


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a fan-out opens many connections at once
    proxy: RecordingProxy


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool matters
    # Headers and body go out in two writes; with Nagle on, each keep-alive reply stalls ~40 ms
    # waiting for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _ProxyServer

    def do_GET(self) -> None:
        self._proxy()

    def do_POST(self) -> None:
        self._proxy()

    def do_PUT(self) -> None:
        self._proxy()

    def do_PATCH(self) -> None:
        self._proxy()

    def do_DELETE(self) -> None:
        self._proxy()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; tests read the recording instead."""

    def _proxy(self) -> None:
        """Record the request, get a reply from the proxy logic and send it back."""
        body = self._read_body()
        split = urlsplit(self.path)
        headers = dict(self.headers.items())
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in headers.items()},
            body=body[:MAX_RECORDED_BODY],
        )
        try:
            reply = self.server.proxy._handle(record, self.path, headers, body)
        except Exception as err:  # a proxy bug must surface as a 500, not a hung client
            logging.getLogger(__name__).exception("proxy failed")
            reply = _error_reply(500, f"test proxy error: {err}")
        record.status, record.finished = reply.status, time.monotonic()
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        """Read a Content-Length or chunked request body."""
        length = self.headers.get("Content-Length")
        if length:
            return self.rfile.read(int(length))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return b""


class EmulatorStack:
    """gcp-storage-emulator (in memory, in process) plus a RecordingProxy in front of it."""

    def __init__(self, bucket: str = DEFAULT_BUCKET, host: str = "127.0.0.1", *, indexed: bool = False) -> None:
        """Prepare the stack; indexed=True answers paginated listings from a sorted name index."""
        from gcp_storage_emulator.server import create_server  # dev-only dependency

        self.bucket = bucket
        # The emulator scans every object per listing (~9 ms at 20k objects) on one thread; a
        # benchmark of the client must not measure that, real GCS lists prefixes in parallel.
        self._index = _NameIndex() if indexed else None
        self._seeds = 0  # direct changes to the emulator's names, see _list_directly
        port = free_port(host)
        self.emulator_url = f"http://{host}:{port}"
        self._server = create_server(host, port, in_memory=True, default_bucket=bucket)
        self.proxy = RecordingProxy(f"{host}:{port}", host=host, lister=self._list_directly)
        logging.getLogger("gcp_storage_emulator").setLevel(logging.ERROR)
        logging.getLogger("api.object").setLevel(logging.ERROR)

    @property
    def url(self) -> str:
        """Return the proxy URL that clients should use as STORAGE_EMULATOR_HOST."""
        return self.proxy.url

    def start(self) -> EmulatorStack:
        """Start the emulator and the proxy."""
        self._server.start()
        self.proxy.start()
        return self

    def stop(self) -> None:
        """Stop the proxy and the emulator."""
        self.proxy.stop()
        self._server.stop()

    def __enter__(self) -> EmulatorStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def listing_count(self) -> int:
        """Return how many objects.list requests the proxy recorded."""
        return self.proxy.listing_count()

    def reset(self) -> None:
        """Delete every object (keeping buckets) and reset the proxy."""
        self._server.wipe(keep_buckets=True)
        self._seeds += 1
        self.proxy.reset()

    def seed(self, objects: Mapping[str, bytes], bucket: str | None = None) -> None:
        """Store objects straight into the emulator, bypassing HTTP, latency and faults."""
        from gcp_storage_emulator.handlers import objects as handlers

        bucket = bucket or self.bucket
        storage = self._server._storage
        with _deferred_config_writes(storage):
            for name, data in objects.items():
                # mediaLink must point at the proxy so downloads go through it too.
                resource = handlers._make_object_resource(
                    self.proxy.url, bucket, name, "application/octet-stream", str(len(data))
                )
                storage.create_file(bucket, name, data, handlers._checksums(data, resource))
        self._seeds += 1

    def _list_directly(self, bucket: str, query: dict[str, list[str]]) -> dict[str, Any] | _Reply:
        """Answer an objects.list query from the emulator's storage, as its HTTP handler would."""
        from gcp_storage_emulator.exceptions import NotFound

        prefix = query.get("prefix", [None])[0]
        delimiter = query.get("delimiter", [None])[0]
        storage = self._server._storage
        if self._index is not None and bucket in storage.buckets:
            # Names change only through seed, reset or a write the proxy forwarded: while neither
            # count moves, skip re-reading every name (~4 ms per listing at 200k objects).
            version = (bucket, self._seeds, self.proxy.writes)
            return self._index.list(storage.objects.get(bucket, {}), prefix or "", delimiter, version)
        try:
            items, prefixes = storage.get_file_list(bucket, prefix, delimiter)
        except NotFound:
            return _error_reply(404, f"The specified bucket does not exist: {bucket}")
        return {"items": items, "prefixes": prefixes}

    def corrupt_checksum(self, name: str, bucket: str | None = None) -> None:
        """Make the stored crc32c of an object wrong, so downloads must fail validation."""
        resource = self._server._storage.objects[bucket or self.bucket][name]
        resource["crc32c"] = "AAAAAA=="


class StackProcess:
    """Run an EmulatorStack in a child process, so the fake server's CPU never holds the client's GIL."""

    def __init__(self, bucket: str = DEFAULT_BUCKET, *, indexed: bool = True, threaded: bool = False) -> None:
        """Prepare the child; threaded=True lets the emulator serve requests concurrently, as GCS does."""
        context = multiprocessing.get_context("spawn")  # no inherited threads or locks
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve_stack, args=(child, bucket, indexed, threaded), daemon=True)
        self.bucket = bucket
        self.url = ""

    def start(self) -> StackProcess:
        """Start the child and wait until its proxy is listening."""
        self._process.start()
        self.url = self._conn.recv()
        return self

    def call(self, method: str, *args: Any) -> Any:
        """Call a method of the child's EmulatorStack by dotted name, e.g. 'proxy.set_latency'."""
        self._conn.send((method, args))
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"{method} failed in the emulator process: {value}")
        return value

    def stop(self) -> None:
        """Ask the child to stop, then reap it."""
        if self._process.is_alive():
            self._conn.send(None)
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()

    def __enter__(self) -> StackProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve_stack(conn: Any, bucket: str, indexed: bool, threaded: bool = False) -> None:
    """Child process body: serve an EmulatorStack and run calls sent over conn until None."""
    if threaded:
        serve_emulator_concurrently()
    with EmulatorStack(bucket, indexed=indexed) as stack:
        conn.send(stack.url)
        while (message := conn.recv()) is not None:
            method, args = message
            target: Any = stack
            for part in method.split("."):
                target = getattr(target, part)
            try:
                conn.send(("ok", target(*args)))
            except Exception as err:  # report, keep serving
                conn.send(("error", repr(err)))
            if method == "seed":
                # Keep the garbage collector from re-scanning every stored object resource on each
                # collection: at 200k objects that stalls listings for tens of milliseconds.
                gc.freeze()


class _NameIndex:
    """Sorted object names of a bucket for O(log n) prefix listings, rebuilt when names change."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._sorted: list[str] = []
        self._version: Hashable = None

    def list(
        self, objects: dict[str, Any], prefix: str, delimiter: str | None, version: Hashable = None
    ) -> dict[str, Any]:
        """Return the items and delimited prefixes under prefix, like the emulator's listing.

        A version other than None that equals the last one promises the names have not changed.
        """
        if version is None or version != self._version:
            keys = list(objects)
            if keys != self._keys:  # identical strings compare by identity: ~0.1 ms for 20k names
                self._keys, self._sorted = keys, sorted(keys)
            self._version = version
        names = self._sorted
        low = bisect_left(names, prefix)
        high = bisect_left(names, _successor(prefix)) if prefix else len(names)
        items: list[dict[str, Any]] = []
        prefixes: list[str] = []
        index = low
        while index < high:
            name = names[index]
            cut = name.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                items.append(objects[name])
                index += 1
            else:
                child = name[: cut + len(delimiter)]  # type: ignore[arg-type]
                prefixes.append(child)
                index = bisect_left(names, _successor(child), index, high)  # skip the whole child
        return {"items": items, "prefixes": prefixes}


def _successor(prefix: str) -> str:
    """Return the smallest string greater than every string that starts with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@contextmanager
def _deferred_config_writes(storage: Any) -> Any:
    """Write the emulator's metadata file once at the end instead of after every object (O(n^2)).

    In memory, skip even that: the file is only read when a Storage starts, and its indented JSON
    takes ~10 s to write at 200k objects. The next change through the emulator rewrites it anyway.
    """
    write = storage._write_config_to_file
    storage._write_config_to_file = lambda: None
    try:
        yield
    finally:
        del storage._write_config_to_file
        if not storage._use_memory_fs:
            write()


def serve_emulator_concurrently() -> None:
    """Make the emulator answer requests on a thread each (it serves one at a time; real GCS does not).

    Only for a child process that runs nothing else: it swaps the emulator's HTTP server class.
    """
    import http.server
    import types

    import gcp_storage_emulator.server as emulator

    emulator.server = types.SimpleNamespace(**{**vars(http.server), "HTTPServer": http.server.ThreadingHTTPServer})
