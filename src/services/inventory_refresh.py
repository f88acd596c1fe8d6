"""Run an inventory refresh in a child process, so a web worker never holds a listing or a build in memory.

The parent (a job on the embedded pool, a Celery worker, or a web worker's start-up rebuild) holds the refresh lock
and owns the shared state (generation, staleness); the child lists, builds, writes the snapshot beside the current
one and publishes it, printing progress and its outcome as marked JSON lines. If the child dies half-way, nothing
was published: every worker keeps serving the previous snapshot.

Child: python -m src.services.inventory_refresh < spec.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from src.services.inventory_store import Progress
from src.storage import base as storage_base
from src.storage.base import StorageError

MARK = "@@bagboard-refresh "
ROOT = Path(__file__).resolve().parents[2]


class RefreshFailed(StorageError):
    """The refresh process failed for a reason other than a listing (it crashed, was killed, or a bug)."""


@dataclass(frozen=True)
class RefreshProcess:
    """How to start the child: the bucket URLs and the GCS retry budget (deadline, initial, maximum, multiplier)."""

    raw_url: str
    ml_url: str
    gcs_retry: tuple[float, float, float, float] | None = None

    def run(self, pointer: Path, prefixes: list[tuple[str, ...]] | None, progress: Progress | None) -> dict[str, Any]:
        """Run one refresh to completion; raise the child's StorageError kind, or RefreshFailed."""
        spec = {**asdict(self), "pointer": str(pointer), "prefixes": None if prefixes is None else list(prefixes)}
        child = subprocess.Popen(
            [sys.executable, "-m", "src.services.inventory_refresh"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))},
        )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(spec))
        child.stdin.close()
        outcome: dict[str, Any] | None = None
        for line in child.stdout:
            if not line.startswith(MARK):
                continue  # anything else the child prints (a library's chatter) is not ours
            message = json.loads(line[len(MARK) :])
            if "progress" in message and progress is not None:
                progress(str(message["progress"]), int(message.get("count", 0)))
            elif "ok" in message or "error" in message:
                outcome = message
        code = child.wait()
        if outcome is not None and outcome.get("ok") and code == 0:
            return outcome
        if outcome is not None and "error" in outcome:
            kind = getattr(storage_base, str(outcome.get("kind")), None)
            if isinstance(kind, type) and issubclass(kind, StorageError):
                raise kind(str(outcome["error"]))
            raise RefreshFailed(f"inventory refresh failed: {outcome['error']}")
        raise RefreshFailed(f"the inventory refresh process ended with code {code} before publishing a snapshot")


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def child_main(spec: dict[str, Any]) -> int:
    """List, build and publish as the spec says; report on stdout. Return the exit code."""
    from src.services.inventory import read_snapshot, rebuild
    from src.storage import open_bucket

    def options(url: str) -> dict[str, Any]:
        if not url.startswith("gs://") or not spec.get("gcs_retry"):
            return {}
        from src.storage.gcs import make_retry

        return {"retry": make_retry(*spec["gcs_retry"])}

    pointer = Path(spec["pointer"])
    prefixes = None if spec.get("prefixes") is None else [tuple(p) for p in spec["prefixes"]]
    try:
        buckets = {"raw": open_bucket(spec["raw_url"], **options(spec["raw_url"]))}
        buckets["ml"] = open_bucket(spec["ml_url"], **options(spec["ml_url"]))
        base = None
        if prefixes is not None:
            try:
                base = read_snapshot(pointer)
            except (FileNotFoundError, ValueError):
                prefixes = None  # nothing usable to merge into: list everything
        started = time.perf_counter()
        name = rebuild(
            buckets,
            pointer,
            built_at=datetime.now(UTC),
            prefixes=prefixes,
            base=base,
            progress=lambda message, count: _emit({"progress": message, "count": count}),
        )
    except StorageError as exc:
        _emit({"error": str(exc), "kind": type(exc).__name__})
        return 3
    except Exception as exc:  # reported to the parent as one line; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        _emit({"error": f"{type(exc).__name__}: {exc}", "kind": "RefreshFailed"})
        return 4
    _emit({"ok": True, "snapshot": name, "seconds": round(time.perf_counter() - started, 3)})
    return 0


if __name__ == "__main__":
    sys.exit(child_main(json.loads(sys.stdin.read())))
