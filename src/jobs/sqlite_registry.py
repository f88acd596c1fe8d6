"""A job registry in one SQLite file (WAL mode), shared by every worker process on the host."""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from src.jobs.base import Job, JobKind
from src.jobs.registry_base import (
    CANCELLED_BEFORE_START,
    INTERRUPTED_ERROR,
    LOG_KEEP,
    JobRegistry,
    check_progress_fields,
    check_terminal,
    clean_params,
    clip_line,
    dump_json,
    new_job_id,
    now_ts,
    one_line,
    to_datetime,
)
from src.models.status import ProcessingStatus

SCHEMA_VERSION = 1
_ACTIVE_SQL = "('pending', 'in_progress')"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL DEFAULT '{{}}',
    started_by TEXT NOT NULL DEFAULT '',
    files_done INTEGER NOT NULL DEFAULT 0,
    files_total INTEGER NOT NULL DEFAULT 0,
    bytes_done INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    result TEXT NOT NULL DEFAULT '{{}}',
    log_tail TEXT NOT NULL DEFAULT '[]',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_kind_target_status ON jobs (kind, target, status);
CREATE INDEX IF NOT EXISTS jobs_created_at ON jobs (created_at);
-- The same (kind, target) cannot be pending or running twice, whichever process asks.
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs (kind, target) WHERE status IN {_ACTIVE_SQL};
"""


# Connections a forked child inherited: kept referenced so that garbage collection never closes them.
_INHERITED: builtins.list[sqlite3.Connection] = []


class _Connection(sqlite3.Connection):
    """A connection that knows its process and can be weakly referenced (freed with its thread)."""

    pid: int


class SqliteJobRegistry(JobRegistry):
    """Keep jobs in a SQLite file; each thread (and each process after a fork) uses its own connection."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        # Weak: request threads come and go (Werkzeug starts one per request); their connections must too.
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- connections -------------------------------------------------------------------------

    def _conn(self) -> _Connection:
        """Return this thread's connection, opening a new one in a forked child."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if conn.pid == os.getpid():
                return conn
            # Inherited across fork: neither use nor close it in the child (SQLite's how-to-corrupt, 2.6).
            _INHERITED.append(conn)
        # Autocommit: single statements are atomic; read-modify-write uses BEGIN IMMEDIATE.
        conn: _Connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False, factory=_Connection
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        # Safe with WAL (a power cut may lose the last commits, never corrupt) and much cheaper per write.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.pid = os.getpid()
        self._local.conn = conn
        with self._lock:
            self._connections.add(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a write transaction that takes the write lock up front (no upgrade deadlocks)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection this instance opened in this process."""
        with self._lock:
            connections, self._connections = list(self._connections), weakref.WeakSet()
        for conn in connections:
            if conn.pid == os.getpid():
                conn.close()
            else:
                _INHERITED.append(conn)
        self._local = threading.local()

    # -- reads -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """Return the job, or None if unknown."""
        row = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def list(
        self,
        limit: int = 100,
        kinds: Iterable[JobKind | str] | None = None,
        active_only: bool = False,
        *,
        exclude_batched: bool = False,
    ) -> builtins.list[Job]:
        """Return jobs newest first, optionally only some kinds, only active ones, or no batch steps."""
        where, args = [], []
        if kinds is not None:
            kind_values = [JobKind(kind).value for kind in kinds]
            if not kind_values:
                return []
            where.append(f"kind IN ({', '.join('?' * len(kind_values))})")
            args.extend(kind_values)
        if active_only:
            where.append(f"status IN {_ACTIVE_SQL}")
        if exclude_batched:
            where.append("json_extract(params, '$.batch') IS NULL")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"  # noqa: S608 - fixed fragments
        return [_row_to_job(row) for row in self._conn().execute(sql, (*args, int(limit)))]

    def is_cancel_requested(self, job_id: str) -> bool:
        """Tell whether a cancel was requested for the job."""
        row = self._conn().execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    # -- writes ------------------------------------------------------------------------------

    def create(
        self,
        kind: JobKind | str,
        target: str,
        params: dict[str, Any] | None = None,
        started_by: str = "",
        *,
        heartbeat: bool = True,
    ) -> tuple[Job, bool]:
        """Create a PENDING job, or return the active one for (kind, target) with created=False."""
        kind = JobKind(kind)
        params = clean_params(params)
        conn = self._conn()
        # A conflicting job may finish between our failed insert and the lookup: then try again.
        for _ in range(5):
            now = now_ts()
            job_id = new_job_id()
            try:
                conn.execute(
                    "INSERT INTO jobs (id, kind, target, status, params, started_by, created_at, heartbeat_at)"
                    " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                    (job_id, kind.value, target, dump_json(params), started_by, now, now if heartbeat else None),
                )
            except sqlite3.IntegrityError:
                row = conn.execute(
                    "SELECT * FROM jobs WHERE kind = ? AND target = ? AND status IN ('pending', 'in_progress')",
                    (kind.value, target),
                ).fetchone()
                if row:
                    return _row_to_job(row), False
                continue
            job = self.get(job_id)
            assert job is not None
            return job, True
        raise RuntimeError(f"could not create a {kind.value} job for {target!r}: the active job keeps changing")

    def start(self, job_id: str) -> bool:
        """Move a PENDING, not cancelled job to IN_PROGRESS; return False if it may not run."""
        now = now_ts()
        cur = self._conn().execute(
            "UPDATE jobs SET status = 'in_progress', started_at = ?, heartbeat_at = ?"
            " WHERE id = ? AND status = 'pending' AND cancel_requested = 0",
            (now, now, job_id),
        )
        return cur.rowcount == 1

    def update_progress(self, job_id: str, **fields: Any) -> bool:
        """Set progress fields of an active job and bump its heartbeat; return False if not active."""
        values = check_progress_fields(fields)
        # Column names come from the PROGRESS_FIELDS whitelist, never from the caller.
        assignments = "".join(f"{name} = ?, " for name in values)
        cur = self._conn().execute(
            f"UPDATE jobs SET {assignments}heartbeat_at = ? WHERE id = ? AND status IN {_ACTIVE_SQL}",  # noqa: S608
            (*values.values(), now_ts(), job_id),
        )
        return cur.rowcount == 1

    def append_logs(self, job_id: str, lines: builtins.list[str], keep: int = LOG_KEEP) -> None:
        """Append lines to the job's log tail, keeping only the last keep lines."""
        if not lines:
            return
        with self._transaction() as conn:
            row = conn.execute("SELECT log_tail FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return
            tail = [*json.loads(row[0]), *(clip_line(line) for line in lines)][-keep:] if keep > 0 else []
            conn.execute("UPDATE jobs SET log_tail = ? WHERE id = ?", (json.dumps(tail), job_id))

    def finish(
        self,
        job_id: str,
        status: ProcessingStatus,
        message: str = "",
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Move an active job to a terminal status; return False if it had already ended."""
        status = check_terminal(status)
        cur = self._conn().execute(
            "UPDATE jobs SET status = ?, message = COALESCE(NULLIF(?, ''), message), error = ?, result = ?,"
            " finished_at = ? WHERE id = ? AND status IN ('pending', 'in_progress')",
            (status.value, message, None if error is None else one_line(error), dump_json(result), now_ts(), job_id),
        )
        return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> bool:
        """Cancel a pending job at once or flag a running one; return False if it is not active."""
        conn = self._conn()
        now = now_ts()
        # Nothing runs a pending job yet, so end it here; a runner that picks it up later skips it.
        cur = conn.execute(
            "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, message = ?, finished_at = ?"
            " WHERE id = ? AND status = 'pending'",
            (CANCELLED_BEFORE_START, now, job_id),
        )
        if cur.rowcount:
            return True
        cur = conn.execute(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'in_progress'",
            (job_id,),
        )
        return cur.rowcount == 1

    def heartbeat(self, job_id: str) -> bool:
        """Record that the job's owner is alive; return False if the job is no longer active."""
        cur = self._conn().execute(
            "UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND status IN ('pending', 'in_progress')",
            (now_ts(), job_id),
        )
        return cur.rowcount == 1

    def mark_interrupted(self, timeout_s: float) -> builtins.list[str]:
        """Fail active jobs whose heartbeat is older than timeout_s; return their ids."""
        now = now_ts()
        with self._transaction() as conn:
            stale = conn.execute(
                "SELECT id FROM jobs"
                " WHERE status IN ('pending', 'in_progress') AND heartbeat_at IS NOT NULL AND heartbeat_at < ?",
                (now - timeout_s,),
            )
            ids = [row[0] for row in stale]
            if ids:
                conn.execute(
                    "UPDATE jobs SET status = 'failed', error = ?, message = 'interrupted', finished_at = ?"
                    " WHERE status IN ('pending', 'in_progress') AND heartbeat_at IS NOT NULL AND heartbeat_at < ?",
                    (INTERRUPTED_ERROR, now, now - timeout_s),
                )
        return ids

    def purge(self, older_than_s: float) -> int:
        """Delete jobs that finished more than older_than_s ago; return how many."""
        cur = self._conn().execute(
            "DELETE FROM jobs WHERE status NOT IN ('pending', 'in_progress') AND COALESCE(finished_at, created_at) < ?",
            (now_ts() - older_than_s,),
        )
        return cur.rowcount


def _row_to_job(row: sqlite3.Row) -> Job:
    """Build a Job from a jobs row."""
    return Job(
        id=row["id"],
        kind=JobKind(row["kind"]),
        target=row["target"],
        status=ProcessingStatus(row["status"]),
        params=json.loads(row["params"]),
        started_by=row["started_by"],
        files_done=row["files_done"],
        files_total=row["files_total"],
        bytes_done=row["bytes_done"],
        bytes_total=row["bytes_total"],
        message=row["message"],
        error=row["error"],
        result=json.loads(row["result"]),
        log_tail=json.loads(row["log_tail"]),
        cancel_requested=bool(row["cancel_requested"]),
        created_at=to_datetime(row["created_at"]),
        started_at=to_datetime(row["started_at"]),
        finished_at=to_datetime(row["finished_at"]),
        heartbeat_at=to_datetime(row["heartbeat_at"]),
    )
