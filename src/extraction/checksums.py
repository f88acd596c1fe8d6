"""CRC32C checksums of the source bags, as GCS reports them, computed beside the extraction."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from types import TracebackType

import google_crc32c

READ_CHUNK = 1024 * 1024  # reused by the allocator: bigger fresh buffers cost page faults on every read
HELPER_MIN_BYTES = 64 * 1024 * 1024  # below this a helper process costs more than it saves

# google_crc32c holds the GIL, so a thread would not overlap the extraction: a small helper process does.
_HELPER = """
import base64, sys, google_crc32c
for path in sys.argv[1:]:
    checksum = google_crc32c.Checksum()
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(1 << 20):
            checksum.update(chunk)
    print(base64.b64encode(checksum.digest()).decode("ascii"), flush=True)
"""


def file_crc32c(path: Path) -> str:
    """Return the file's CRC32C as GCS reports it: base64 of the 4 big-endian bytes."""
    checksum = google_crc32c.Checksum()
    with path.open("rb", buffering=0) as fh:
        while chunk := fh.read(READ_CHUNK):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


class Checksums:
    """Checksum files in a helper process started at once (big inputs) or in-process when asked (small ones)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        self._proc: subprocess.Popen[str] | None = None
        if sum(path.stat().st_size for path in self.paths) >= HELPER_MIN_BYTES:
            try:
                self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script, paths as argv
                    [sys.executable, "-I", "-c", _HELPER, *map(str, self.paths)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            except OSError:
                self._proc = None  # no interpreter to start (embedded Python): compute in-process

    def results(self) -> dict[Path, str]:
        """Return path -> CRC32C for every path; falls back to in-process hashing if the helper failed."""
        if self._proc is not None:
            proc, self._proc = self._proc, None
            out, _ = proc.communicate()
            lines = out.split()
            if proc.returncode == 0 and len(lines) == len(self.paths):
                return dict(zip(self.paths, lines, strict=True))
        return {path: file_crc32c(path) for path in self.paths}

    def close(self) -> None:
        """Stop the helper if it still runs."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def __enter__(self) -> Checksums:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
