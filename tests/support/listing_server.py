"""A listing-only stand-in for GCS at bucket sizes fake-gcs-server cannot hold (benchmarks only).

fake-gcs-server's memory backend keeps a bucket as a plain list: every insert and every listing scans
all of it, so seeding 200k objects takes hours and each page costs time proportional to the bucket,
where GCS lists a prefix in time independent of the bucket. This answers objects.list as GCS does
(sorted names, at most 1000 entries per page counting prefixes, page tokens, the '/' delimiter and a
flat items(...) fields mask) from a sorted name list, and nothing else. tests/storage checks that it
lists like fake-gcs-server.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import re
from bisect import bisect_left
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_PAGE = 1000  # what GCS allows per page
_LIST_PATH = re.compile(r"^/storage/v1/b/(?P<bucket>[^/]+)/o$")
_GENERATION = "1700000000000000"
_UPDATED = "2024-05-14T10:32:00.000Z"


class Listing:
    """The sorted objects of one bucket and the objects.list answers over them."""

    def __init__(self, objects: Iterable[tuple[str, int]]) -> None:
        pairs = sorted(objects)
        self.names = [name for name, _ in pairs]
        self.sizes = [size for _, size in pairs]
        self._rendered: dict[tuple[str, ...], list[str]] = {}  # item fields -> each item's JSON, made once

    def page_json(self, query: dict[str, list[str]]) -> bytes:
        """Answer one objects.list request as JSON bytes.

        Items are rendered once per fields mask, so a page costs this server a join, not a
        json.dumps of a thousand dicts: the benchmark's client shares the machine's two cores with it.
        """
        answer = self.page(query, render=True)
        items = answer.pop("items", None)
        text = json.dumps(answer, separators=(",", ":"))
        if not items:
            return text.encode()
        joined = '"items":[' + ",".join(items) + "]"
        return (text[:-1] + ("," if len(text) > 2 else "") + joined + "}").encode()

    def page(self, query: dict[str, list[str]], *, render: bool = False) -> dict[str, Any]:
        """Answer one objects.list request (items as JSON strings with render)."""
        prefix = _one(query, "prefix") or ""
        delimiter = _one(query, "delimiter")
        limit = min(int(_one(query, "maxResults") or MAX_PAGE), MAX_PAGE)
        token = _one(query, "pageToken")
        names = self.names
        index = bisect_left(names, base64.urlsafe_b64decode(token).decode() if token else prefix)
        high = bisect_left(names, _successor(prefix)) if prefix else len(names)
        item_fields = _item_fields(_one(query, "fields"))
        items: list[Any] = []
        prefixes: list[str] = []
        while index < high and len(items) + len(prefixes) < limit:
            name = names[index]
            cut = name.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                items.append(self._render(item_fields, index) if render else self._resource(index))
                index += 1
            else:
                child = name[: cut + len(delimiter)]  # type: ignore[arg-type]
                prefixes.append(child)
                index = bisect_left(names, _successor(child), index, high)  # the whole child at once
        answer: dict[str, Any] = {"kind": "storage#objects"}
        if items:  # GCS leaves out empty arrays
            answer["items"] = items
        if prefixes:
            answer["prefixes"] = prefixes
        if index < high:
            answer["nextPageToken"] = base64.urlsafe_b64encode(names[index].encode()).decode()
        return _project(answer, _one(query, "fields"), item_fields)

    def _render(self, item_fields: tuple[str, ...] | None, index: int) -> str:
        """Return one item's JSON under the mask's item fields, rendering the whole bucket once per mask."""
        key = item_fields or ()
        rendered = self._rendered.get(key)
        if rendered is None:
            rendered = self._rendered[key] = [
                json.dumps(_keep(self._resource(i), item_fields), separators=(",", ":")) for i in range(len(self.names))
            ]
        return rendered[index]

    def _resource(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        return {
            "kind": "storage#object",
            "name": name,
            "size": str(self.sizes[index]),
            "updated": _UPDATED,
            "crc32c": "AAAAAA==",
            "md5Hash": "1B2M2Y8AsgTpgAmY7PhCfg==",
            "generation": _GENERATION,
            "contentType": "application/octet-stream",
            "storageClass": "STANDARD",
            "metageneration": "1",
        }


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _successor(prefix: str) -> str:
    """Return the smallest string greater than every string that starts with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _item_fields(fields: str | None) -> tuple[str, ...] | None:
    """Return the item fields of a flat mask like 'items(name,size),prefixes,nextPageToken' (None: no mask)."""
    if not fields:
        return None
    match = re.fullmatch(r"items\((?P<item>[^()]*)\)((?:,\w+)*)", fields.replace(" ", ""))
    if match is None:
        raise ValueError(f"unsupported fields mask {fields!r} (the app sends only flat items(...) masks)")
    return tuple(match["item"].split(","))


def _keep(item: dict[str, Any], item_fields: tuple[str, ...] | None) -> dict[str, Any]:
    return item if item_fields is None else {k: item[k] for k in item_fields if k in item}


def _project(answer: dict[str, Any], fields: str | None, item_fields: tuple[str, ...] | None) -> dict[str, Any]:
    """Keep the top-level keys a mask names; items were already cut to its item fields."""
    if not fields:
        return answer
    keep = {"items", *fields.replace(" ", "").split(")", 1)[1].split(",")}
    projected = {key: value for key, value in answer.items() if key in keep}
    if "items" in projected and projected["items"] and isinstance(projected["items"][0], dict):
        projected["items"] = [_keep(item, item_fields) for item in projected["items"]]
    return projected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Any

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if not _LIST_PATH.match(split.path):
            self._send(404, {"error": {"code": 404, "message": "only objects.list is served here"}})
            return
        self._send_bytes(200, self.server.listing.page_json(parse_qs(split.query)))

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet."""

    def _send(self, status: int, answer: dict[str, Any]) -> None:
        self._send_bytes(status, json.dumps(answer, separators=(",", ":")).encode())

    def _send_bytes(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class ListingServer:
    """Serve one bucket's listing in a child process (so it never holds the client's GIL)."""

    def __init__(self, objects: list[tuple[str, int]]) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, objects), daemon=True)
        self.url = ""

    def start(self) -> ListingServer:
        """Start the child and wait until it listens."""
        self._process.start()
        self.url = self._conn.recv()
        return self

    def stop(self) -> None:
        """Stop the child."""
        self._process.terminate()
        self._process.join()

    def __enter__(self) -> ListingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a fan-out connects dozens at once; the default 5 drops SYNs (1 s retries)


def _serve(conn: Any, objects: list[tuple[str, int]]) -> None:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.listing = Listing(objects)  # type: ignore[attr-defined]
    host, port = server.server_address[:2]
    conn.send(f"http://{host}:{port}")
    server.serve_forever()
