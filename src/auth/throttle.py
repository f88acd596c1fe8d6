"""Slow password guessing without letting anyone lock other people out.

Failures are counted in the shared cache (so limits hold across gunicorn workers and, with Redis, hosts) under three
keys, each with its own limit within a 15-minute window:

- the user name from this address: 5 failures, then a lock of 1 minute, doubling with each further failure up to 15;
- the user name from any address: 10 failures, with the same backoff (rotating addresses does not help an attacker);
- the address, whatever the user name: 50 failures (password spraying), locking the address for 15 minutes.

A browser that has signed in as a user carries a signed "known device" cookie for that name. Its attempts for that
name skip the user-wide and the address keys and are counted per device instead (5, with the same backoff): so
neither someone's typos nor an attacker guessing from the same office NAT, or from many addresses, locks out a user
on the browser they have used before.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cachelib import BaseCache

WINDOW_SECONDS = 15 * 60
MAX_LOCKOUT_SECONDS = 15 * 60
BASE_LOCKOUT_SECONDS = 60


@dataclass(frozen=True)
class Limit:
    """A throttled key: its cache key, failures allowed in the window, and whether lockouts back off."""

    key: str
    max_failures: int
    backoff: bool = True


PAIR_LIMIT = 5
USER_LIMIT = 10
DEVICE_LIMIT = 5
ADDRESS_LIMIT = 50


def _key(kind: str, value: str) -> str:
    # Hash so arbitrary user input never becomes a file name or redis key verbatim.
    return f"login-throttle:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


def _name(username: str) -> str:
    return username.strip().lower()


class LoginThrottle:
    """Count failures in the shared cache so the limits hold across gunicorn workers."""

    def __init__(self, cache: BaseCache, *, window: int = WINDOW_SECONDS, clock: Callable[[], float] = time.time):
        self.cache = cache
        self.window = window
        self.clock = clock

    @staticmethod
    def limits(username: str, address: str, device: str | None = None) -> list[Limit]:
        """Return the keys an attempt counts against: per device when the browser is known for the name."""
        name = _name(username)
        if device:
            return [Limit(_key("device", f"{device}\0{name}"), DEVICE_LIMIT)]
        return [
            Limit(_key("pair", f"{name}\0{address}"), PAIR_LIMIT),
            Limit(_key("user", name), USER_LIMIT),
            Limit(_key("addr", address), ADDRESS_LIMIT, backoff=False),
        ]

    def retry_after(self, limits: Iterable[Limit]) -> int:
        """Return seconds until every locked key frees up (0 when none is locked)."""
        now = self.clock()
        waits = [
            int(entry["locked_until"] - now) + 1
            for entry in (self.cache.get(limit.key) for limit in limits)
            if entry and entry.get("locked_until", 0) > now
        ]
        return max(waits, default=0)

    def record_failure(self, limits: Iterable[Limit]) -> None:
        """Count one failure for each key, locking those at their limit (longer with each further failure)."""
        now = self.clock()
        for limit in limits:
            entry = self.cache.get(limit.key) or {}
            failures = [t for t in entry.get("failures", []) if t > now - self.window] + [now]
            locked_until = entry.get("locked_until", 0)
            excess = len(failures) - limit.max_failures
            if excess >= 0:
                lockout = BASE_LOCKOUT_SECONDS * 2**excess if limit.backoff else MAX_LOCKOUT_SECONDS
                locked_until = now + min(lockout, MAX_LOCKOUT_SECONDS)
            # Keep only what the window needs: a flood of failures must not grow the entry without bound.
            entry = {"failures": failures[-(limit.max_failures + 8) :], "locked_until": locked_until}
            self.cache.set(limit.key, entry, timeout=self.window + MAX_LOCKOUT_SECONDS)

    def reset(self, limits: Iterable[Limit]) -> None:
        """Forget the failures of these keys."""
        for limit in limits:
            self.cache.delete(limit.key)
