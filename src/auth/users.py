"""Users kept in a JSON or TOML file with werkzeug password hashes."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from src.auth.roles import Role

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
# Hashing a throwaway password keeps unknown-user logins as slow as real ones.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class UserStoreError(Exception):
    """The users file is unreadable or an edit is invalid; the message says which."""


@dataclass(frozen=True)
class User(UserMixin):
    """A signed-in person as Flask-Login sees them."""

    name: str
    role: Role
    password_hash: str
    demo: bool = False
    created_at: str = ""

    def get_id(self) -> str:
        """Return the id stored in the session."""
        return self.name

    def can(self, required: Role) -> bool:
        """Tell whether the user's role includes required."""
        return self.role.allows(required)


def validate_username(name: str) -> str:
    """Return name if it is a valid user name, else raise ValueError."""
    if not USERNAME_PATTERN.match(name or ""):
        raise ValueError("user name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


class UserStore:
    """Read and edit the users file; re-read it whenever it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}

    # reading -----------------------------------------------------------------------------------

    def all(self) -> dict[str, User]:
        """Return every user by name, from the file's current content."""
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._users = None, {}
                return {}
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._users = self._parse(self.path.read_bytes())
                self._stamp = stamp
            return dict(self._users)

    def get(self, name: str) -> User | None:
        """Return the named user or None."""
        return self.all().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """Return the user when the password matches, else None (in constant-ish time)."""
        user = self.get(name)
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        return user if check_password_hash(user.password_hash, password) else None

    def has_demo_user(self) -> bool:
        """Tell whether a demo account exists."""
        return any(user.demo for user in self.all().values())

    def _parse(self, raw: bytes) -> dict[str, User]:
        try:
            if self.path.suffix == ".toml":
                data = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw.decode("utf-8") or "{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserStoreError(f"users file {self.path} is not valid {self._format()}: {exc}") from None
        entries = data.get("users", {}) if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise UserStoreError(f"users file {self.path} must hold a 'users' table keyed by user name")
        users: dict[str, User] = {}
        for name, entry in entries.items():
            try:
                validate_username(name)
                if not isinstance(entry, dict) or not str(entry.get("password_hash", "")).startswith(
                    ("scrypt:", "pbkdf2:")
                ):
                    raise ValueError("needs a scrypt or pbkdf2 password_hash")
                users[name] = User(
                    name=name,
                    role=Role.parse(str(entry.get("role", "viewer"))),
                    password_hash=entry["password_hash"],
                    demo=bool(entry.get("demo", False)),
                    created_at=str(entry.get("created_at", "")),
                )
            except ValueError as exc:
                raise UserStoreError(f"users file {self.path}: user {name!r}: {exc}") from None
        return users

    def _format(self) -> str:
        return "TOML" if self.path.suffix == ".toml" else "JSON"

    # editing -----------------------------------------------------------------------------------

    def add(self, name: str, password: str, role: Role, *, demo: bool = False) -> User:
        """Create a user; refuse duplicates and short passwords."""
        validate_username(name)
        if len(password) < MIN_PASSWORD_LENGTH and not demo:
            raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        users = self.all()
        if name in users:
            raise ValueError(f"user {name!r} already exists")
        user = User(
            name=name,
            role=role,
            password_hash=generate_password_hash(password, method="scrypt"),
            demo=demo,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        users[name] = user
        self._write(users)
        return user

    def remove(self, name: str) -> None:
        """Delete a user."""
        users = self.all()
        if users.pop(name, None) is None:
            raise ValueError(f"no user named {name!r}")
        self._write(users)

    def set_role(self, name: str, role: Role) -> User:
        """Change a user's role."""
        users = self.all()
        if name not in users:
            raise ValueError(f"no user named {name!r}")
        old = users[name]
        users[name] = User(old.name, role, old.password_hash, old.demo, old.created_at)
        self._write(users)
        return users[name]

    def set_password(self, name: str, password: str) -> User:
        """Change a user's password (their open sessions end: the hash is part of each session's fingerprint)."""
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
        users = self.all()
        if name not in users:
            raise ValueError(f"no user named {name!r}")
        old = users[name]
        new_hash = generate_password_hash(password, method="scrypt")
        users[name] = User(old.name, old.role, new_hash, old.demo, old.created_at)
        self._write(users)
        return users[name]

    def _write(self, users: dict[str, User]) -> None:
        """Write atomically with owner-only permissions: hashes are still secrets."""
        payload = {
            "users": {
                u.name: {
                    "password_hash": u.password_hash,
                    "role": u.role.value,
                    "demo": u.demo,
                    "created_at": u.created_at,
                }
                for u in sorted(users.values(), key=lambda u: u.name)
            }
        }
        text = _to_toml(payload) if self.path.suffix == ".toml" else json.dumps(payload, indent=2) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _to_toml(payload: dict[str, Any]) -> str:
    """Write the users table as TOML (JSON string escapes are valid TOML basic strings)."""
    lines: list[str] = []
    for name, entry in payload["users"].items():
        lines.append(f"[users.{json.dumps(name)}]")
        for key, value in entry.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)
