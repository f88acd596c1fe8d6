"""Human-friendly formatting shared by views and the CLI."""

from __future__ import annotations


def format_bytes(size: float | None) -> str:
    """Return a size like '1.2 GB' (decimal units, as cloud consoles show them)."""
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def format_age(seconds: float | None) -> str:
    """Return an age like '3 min ago'."""
    if seconds is None:
        return "never"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"
