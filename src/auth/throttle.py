"""Refuse logins after repeated failures, per user name and per client address."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

from cachelib import BaseCache

MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60
LOCKOUT_SECONDS = 15 * 60


class LoginThrottle:
    """Count failures in the shared cache so the limit holds across gunicorn workers."""

    def __init__(
        self,
        cache: BaseCache,
        *,
        max_failures: int = MAX_FAILURES,
        window: int = WINDOW_SECONDS,
        lockout: int = LOCKOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.clock = clock

    @staticmethod
    def keys(username: str, address: str) -> list[str]:
        """Return the cache keys for a user name and a client address."""

        # Hash so arbitrary user input never becomes a file name or redis key verbatim.
        def key(kind: str, value: str) -> str:
            return f"login-throttle:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"

        return [key("user", username.strip().lower()), key("addr", address)]

    def retry_after(self, keys: Iterable[str]) -> int:
        """Return seconds until any locked key frees up (0 when none is locked)."""
        now = self.clock()
        waits = [
            int(entry["locked_until"] - now) + 1
            for entry in (self.cache.get(k) for k in keys)
            if entry and entry.get("locked_until", 0) > now
        ]
        return max(waits, default=0)

    def record_failure(self, keys: Iterable[str]) -> None:
        """Count one failure for each key, locking those that reach the limit."""
        now = self.clock()
        for k in keys:
            entry = self.cache.get(k) or {}
            failures = [t for t in entry.get("failures", []) if t > now - self.window] + [now]
            locked_until = entry.get("locked_until", 0)
            if len(failures) >= self.max_failures:
                locked_until = now + self.lockout
            self.cache.set(k, {"failures": failures, "locked_until": locked_until}, timeout=self.window + self.lockout)

    def reset(self, keys: Iterable[str]) -> None:
        """Forget the failures of these keys."""
        for k in keys:
            self.cache.delete(k)
