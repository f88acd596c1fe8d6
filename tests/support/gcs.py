"""fake-gcs-server behind the fault proxy, as the test fixtures and benchmarks use them together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.fake_gcs import FakeGcsServer, free_port, unique_bucket_name
from tests.support.fault_proxy import FaultProxy, ProxyProcess


class FakeGcs:
    """One fake-gcs-server with a fault proxy in front; clients talk to the proxy (STORAGE_EMULATOR_HOST).

    Tests keep the proxy in process, to set faults and read the record directly; benchmarks pass
    remote=True to run it in a child process, so it never holds their GIL.
    """

    def __init__(self, *, remote: bool = False, data_dir: Path | None = None) -> None:
        proxy_port = free_port()
        # mediaLink and resumable-upload Locations must point at the proxy, or traffic would bypass it.
        self.server = FakeGcsServer(external_url=f"http://127.0.0.1:{proxy_port}", data_dir=data_dir)
        proxy_class = ProxyProcess if remote else FaultProxy
        self.proxy: Any = proxy_class(self.server.url, port=proxy_port)

    @property
    def url(self) -> str:
        """Return the proxy URL clients should use."""
        return self.proxy.url

    def call(self, method: str, *args: Any) -> Any:
        """Call a FaultProxy method by name, wherever the proxy runs (e.g. call("set_latency", 0.05))."""
        if isinstance(self.proxy, ProxyProcess):
            return self.proxy.call(method, *args)
        return getattr(self.proxy, method)(*args)

    def start(self) -> FakeGcs:
        """Start the server, then the proxy."""
        self.server.start()
        try:
            self.proxy.start()
        except BaseException:
            self.server.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the proxy, then the server."""
        self.proxy.stop()
        self.server.stop()

    def __enter__(self) -> FakeGcs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def new_bucket(self, stem: str = "t") -> GcsTestBucket:
        """Create an empty bucket no other test uses."""
        return GcsTestBucket(self, self.server.create_bucket(unique_bucket_name(stem)))


@dataclass
class GcsTestBucket:
    """One test's bucket on the shared fake-gcs-server."""

    gcs: FakeGcs
    bucket: str

    @property
    def url(self) -> str:
        """Return the proxy URL (what STORAGE_EMULATOR_HOST is set to)."""
        return self.gcs.url

    @property
    def proxy(self) -> FaultProxy:
        """Return the fault proxy in front of the server."""
        return self.gcs.proxy

    @property
    def server(self) -> FakeGcsServer:
        """Return the server itself (requests to it bypass the proxy)."""
        return self.gcs.server

    def seed(self, objects: Mapping[str, bytes]) -> None:
        """Store objects straight into the server, bypassing latency, faults and the record."""
        self.server.seed(self.bucket, objects)

    def listing_count(self) -> int:
        """Return how many objects.list requests the proxy recorded."""
        return self.proxy.listing_count()

    def metadata(self, name: str) -> dict:
        """Return the server's resource for an object of this bucket."""
        return self.server.metadata(self.bucket, name)
