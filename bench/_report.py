"""One machine-readable line per headline figure, so `make bench` can build docs/performance.md."""

from __future__ import annotations

import json

PREFIX = "RESULT "


def emit(bench: str, measure: str, value: str, target: str = "", ok: bool | None = None, note: str = "") -> None:
    """Print one figure: what was measured, its value (with unit), the target and whether it was met."""
    record = {"bench": bench, "measure": measure, "value": value, "target": target, "ok": ok, "note": note}
    print(PREFIX + json.dumps(record), flush=True)
