"""Server-side session records in the shared cache, so a session can be ended on every worker and host.

The signed cookie carries only a random session id. Each id has a record in the shared cache naming its user, the
user's session generation and a fingerprint of the user's role and password hash when the session began. A session
is valid while its record exists, the generation is still the user's current one, the fingerprint still matches the
users file, and neither the idle timeout nor the absolute lifetime has passed. So sign-out deletes the record, "sign
out everywhere" (and `flask users revoke`) moves the user's generation on, and a role or password change or a
removal, however it was made, no longer matches. A record or generation missing from the cache (evicted, or the
cache was cleared) fails closed: the user signs in again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from typing import Any

from cachelib import BaseCache

from src.auth.users import User

# Idle time is written back at most this often, so a page's many callbacks do not each write to the cache.
TOUCH_INTERVAL_SECONDS = 60


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def fingerprint(user: User) -> str:
    """Return what must not change under an open session: the role and the password hash."""
    return _digest(f"{user.role.value}\0{user.password_hash}")


class SessionRegistry:
    """Create, check, end and revoke sessions; the records live in the shared cache."""

    def __init__(
        self,
        cache: BaseCache,
        *,
        idle_seconds: float,
        lifetime_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.idle = idle_seconds
        self.lifetime = lifetime_seconds
        self.clock = clock

    # The cookie's id is hashed before it becomes a key: a cache dump holds no usable session ids.
    @staticmethod
    def _record_key(sid: str) -> str:
        return f"session:{_digest(sid)}"

    @staticmethod
    def _generation_key(name: str) -> str:
        return f"session-generation:{_digest(name)}"

    def generation(self, name: str) -> str:
        """Return the user's current session generation, starting a new one when the cache has none."""
        key = self._generation_key(name)
        current = self.cache.get(key)
        if not current:
            current = secrets.token_hex(8)
            # add() keeps a value another worker set first, so both agree on one generation.
            if not self.cache.add(key, current, timeout=0):
                current = self.cache.get(key) or current
        return str(current)

    def create(self, user: User) -> str:
        """Start a session for user and return its id (for the signed cookie)."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        record = {
            "user": user.name,
            "generation": self.generation(user.name),
            "fingerprint": fingerprint(user),
            "created": now,
            "seen": now,
        }
        self.cache.set(self._record_key(sid), record, timeout=self._ttl(record, now))
        return sid

    def check(self, sid: Any, user: User) -> str:
        """Return '' when the session is valid for user (and note the activity), else why it is not."""
        if not isinstance(sid, str) or not sid:
            return "no session id"
        key = self._record_key(sid)
        record = self.cache.get(key)
        now = self.clock()
        reason = self._problem(record, user, now)
        if reason:
            self.cache.delete(key)
            return reason
        if now - record["seen"] >= TOUCH_INTERVAL_SECONDS:
            record = {**record, "seen": now}
            self.cache.set(key, record, timeout=self._ttl(record, now))
        return ""

    def _problem(self, record: Any, user: User, now: float) -> str:
        if not isinstance(record, dict) or record.get("user") != user.name:
            return "unknown or ended session"
        if record.get("generation") != self.generation(user.name):
            return "revoked"
        if record.get("fingerprint") != fingerprint(user):
            return "role or password changed"
        if now - record["created"] >= self.lifetime:
            return "lifetime reached"
        if now - record["seen"] >= self.idle:
            return "idle timeout"
        return ""

    def _ttl(self, record: dict[str, Any], now: float) -> int:
        """Return how long the cache should keep the record: until it could no longer be valid."""
        remaining = min(record["seen"] + self.idle, record["created"] + self.lifetime) - now
        return max(1, int(remaining) + TOUCH_INTERVAL_SECONDS)

    def end(self, sid: Any) -> None:
        """End one session (sign-out): its cookie, replayed, no longer works."""
        if isinstance(sid, str) and sid:
            self.cache.delete(self._record_key(sid))

    def revoke_all(self, name: str) -> None:
        """End every session of the user, on every worker and host sharing the cache."""
        self.cache.set(self._generation_key(name), secrets.token_hex(8), timeout=0)
