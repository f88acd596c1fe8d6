"""A job registry in Redis, for workers on several hosts; every state change is one Lua script.

Keys under the prefix: ``job:<id>`` (hash), ``log:<id>`` (list), ``created`` and ``finished``
(sorted sets by time), ``active`` (set), ``heartbeats`` (sorted set of active jobs by heartbeat)
and ``active:<kind>:<target>`` (the id of the one active job for that pair). The scripts build
key names from the prefix, so this needs a standalone Redis (or one cluster slot), not a cluster.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis

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
    is_batched,
    new_job_id,
    now_ts,
    one_line,
    to_datetime,
)
from src.models.status import ProcessingStatus

_PAGE = 200
_PURGE_BATCH = 500

# Shared by the scripts: ARGV[1] is always the key prefix.
_LUA_COMMON = """
local P = ARGV[1]
local function is_active(st) return st == 'pending' or st == 'in_progress' end
local function close(id, status, now, message, err, result)
  local key = P .. 'job:' .. id
  local kind = redis.call('HGET', key, 'kind')
  local target = redis.call('HGET', key, 'target')
  redis.call('HSET', key, 'status', status, 'finished_at', now)
  if message ~= '' then redis.call('HSET', key, 'message', message) end
  if err then redis.call('HSET', key, 'error', err) end
  if result then redis.call('HSET', key, 'result', result) end
  local akey = P .. 'active:' .. kind .. ':' .. target
  if redis.call('GET', akey) == id then redis.call('DEL', akey) end
  redis.call('SREM', P .. 'active', id)
  redis.call('ZREM', P .. 'heartbeats', id)
  redis.call('ZADD', P .. 'finished', now, id)
end
"""

# ARGV: prefix, id, now, heartbeat ('1'/'0'), kind, target, field/value pairs...
_CREATE = """
local akey = P .. 'active:' .. ARGV[5] .. ':' .. ARGV[6]
local existing = redis.call('GET', akey)
if existing and is_active(redis.call('HGET', P .. 'job:' .. existing, 'status')) then return existing end
local id = ARGV[2]
redis.call('SET', akey, id)
redis.call('HSET', P .. 'job:' .. id, unpack(ARGV, 7))
redis.call('ZADD', P .. 'created', ARGV[3], id)
redis.call('SADD', P .. 'active', id)
if ARGV[4] == '1' then redis.call('ZADD', P .. 'heartbeats', ARGV[3], id) end
return id
"""

# ARGV: prefix, id, now
_START = """
local key = P .. 'job:' .. ARGV[2]
if redis.call('HGET', key, 'status') ~= 'pending' or redis.call('HGET', key, 'cancel_requested') == '1' then
  return 0
end
redis.call('HSET', key, 'status', 'in_progress', 'started_at', ARGV[3], 'heartbeat_at', ARGV[3])
redis.call('ZADD', P .. 'heartbeats', ARGV[3], ARGV[2])
return 1
"""

# ARGV: prefix, id, now, field/value pairs... (none for a bare heartbeat)
_PROGRESS = """
local key = P .. 'job:' .. ARGV[2]
if not is_active(redis.call('HGET', key, 'status')) then return 0 end
redis.call('HSET', key, 'heartbeat_at', ARGV[3], unpack(ARGV, 4))
redis.call('ZADD', P .. 'heartbeats', ARGV[3], ARGV[2])
return 1
"""

# ARGV: prefix, id, keep, lines...
_APPEND_LOG = """
if redis.call('EXISTS', P .. 'job:' .. ARGV[2]) == 0 then return 0 end
local lkey = P .. 'log:' .. ARGV[2]
local keep = tonumber(ARGV[3])
if keep <= 0 then redis.call('DEL', lkey) return 1 end
redis.call('RPUSH', lkey, unpack(ARGV, 4))
redis.call('LTRIM', lkey, -keep, -1)
return 1
"""

# ARGV: prefix, id, status, now, message, has_error ('1'/'0'), error, result
_FINISH = """
if not is_active(redis.call('HGET', P .. 'job:' .. ARGV[2], 'status')) then return 0 end
close(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] == '1' and ARGV[7] or nil, ARGV[8])
return 1
"""

# ARGV: prefix, id, now, message for a job cancelled before it started
_CANCEL = """
local key = P .. 'job:' .. ARGV[2]
local st = redis.call('HGET', key, 'status')
if st == 'pending' then
  redis.call('HSET', key, 'cancel_requested', '1')
  close(ARGV[2], 'cancelled', ARGV[3], ARGV[4], nil, nil)
  return 1
elseif st == 'in_progress' then
  redis.call('HSET', key, 'cancel_requested', '1')
  return 1
end
return 0
"""

# ARGV: prefix, cutoff, now, error
_MARK_INTERRUPTED = """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'heartbeats', '-inf', '(' .. ARGV[2])) do
  if is_active(redis.call('HGET', P .. 'job:' .. id, 'status')) then
    close(id, 'failed', ARGV[3], 'interrupted', ARGV[4], nil)
    table.insert(out, id)
  else
    redis.call('ZREM', P .. 'heartbeats', id)
  end
end
return out
"""

# ARGV: prefix, cutoff, batch size
_PURGE = """
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('DEL', P .. 'job:' .. id, P .. 'log:' .. id)
  redis.call('ZREM', P .. 'created', id)
  redis.call('ZREM', P .. 'finished', id)
end
return #ids
"""


class RedisJobRegistry(JobRegistry):
    """Keep jobs in Redis under a key prefix; safe for any number of processes and hosts."""

    def __init__(self, url: str, prefix: str = "bagboard:jobs:", *, client: redis.Redis | None = None) -> None:
        self.prefix = prefix
        # redis-py's pool notices a fork and reconnects in the child.
        self._client = client or redis.Redis.from_url(url, decode_responses=True)
        self._scripts = {
            name: self._client.register_script(_LUA_COMMON + body)
            for name, body in {
                "create": _CREATE,
                "start": _START,
                "progress": _PROGRESS,
                "append_log": _APPEND_LOG,
                "finish": _FINISH,
                "cancel": _CANCEL,
                "mark_interrupted": _MARK_INTERRUPTED,
                "purge": _PURGE,
            }.items()
        }

    def _run(self, name: str, *args: Any) -> Any:
        """Run one of the scripts with the prefix as its first argument."""
        return self._scripts[name](args=[self.prefix, *args])

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- reads -------------------------------------------------------------------------------

    def _load(self, ids: builtins.list[str]) -> builtins.list[Job]:
        """Fetch jobs by id in one round trip, skipping ids that vanished meanwhile."""
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(f"{self.prefix}job:{job_id}")
            pipe.lrange(f"{self.prefix}log:{job_id}", 0, -1)
        replies = pipe.execute()
        return [_to_job(fields, log) for fields, log in zip(replies[::2], replies[1::2], strict=True) if fields]

    def get(self, job_id: str) -> Job | None:
        """Return the job, or None if unknown."""
        jobs = self._load([job_id])
        return jobs[0] if jobs else None

    def list(
        self,
        limit: int = 100,
        kinds: Iterable[JobKind | str] | None = None,
        active_only: bool = False,
        *,
        exclude_batched: bool = False,
    ) -> builtins.list[Job]:
        """Return jobs newest first, optionally only some kinds, only active ones, or no batch steps."""
        wanted = None if kinds is None else {JobKind(kind) for kind in kinds}
        if limit <= 0 or wanted == set():
            return []

        def keep(job: Job) -> bool:
            return (wanted is None or job.kind in wanted) and not (exclude_batched and is_batched(job))

        if active_only:
            jobs = [job for job in self._load(sorted(self._client.smembers(f"{self.prefix}active"))) if job.is_active]
            jobs.sort(key=lambda job: (job.created_at, job.id), reverse=True)
            return [job for job in jobs if keep(job)][:limit]
        found: builtins.list[Job] = []
        start = 0
        while len(found) < limit:
            ids = self._client.zrevrange(f"{self.prefix}created", start, start + _PAGE - 1)
            found.extend(job for job in self._load(ids) if keep(job))
            if len(ids) < _PAGE:
                break
            start += _PAGE
        return found[:limit]

    def is_cancel_requested(self, job_id: str) -> bool:
        """Tell whether a cancel was requested for the job."""
        return self._client.hget(f"{self.prefix}job:{job_id}", "cancel_requested") == "1"

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
        for _ in range(5):
            job_id, now = new_job_id(), repr(now_ts())
            fields = {
                "id": job_id,
                "kind": kind.value,
                "target": target,
                "status": ProcessingStatus.PENDING.value,
                "params": dump_json(params),
                "started_by": started_by,
                "result": "{}",
                "cancel_requested": "0",
                "created_at": now,
                **({"heartbeat_at": now} if heartbeat else {}),
            }
            pairs = [item for pair in fields.items() for item in pair]
            winner = self._run("create", job_id, now, "1" if heartbeat else "0", kind.value, target, *pairs)
            job = self.get(winner)
            # The winner may have been purged between the script and the read (only if it ended): retry.
            if job is not None:
                return job, winner == job_id
        raise RuntimeError(f"could not create a {kind.value} job for {target!r}: the active job keeps changing")

    def start(self, job_id: str) -> bool:
        """Move a PENDING, not cancelled job to IN_PROGRESS; return False if it may not run."""
        return self._run("start", job_id, repr(now_ts())) == 1

    def update_progress(self, job_id: str, **fields: Any) -> bool:
        """Set progress fields of an active job and bump its heartbeat; return False if not active."""
        pairs = [item for name, value in check_progress_fields(fields).items() for item in (name, str(value))]
        return self._run("progress", job_id, repr(now_ts()), *pairs) == 1

    def append_logs(self, job_id: str, lines: builtins.list[str], keep: int = LOG_KEEP) -> None:
        """Append lines to the job's log tail, keeping only the last keep lines."""
        if lines:
            self._run("append_log", job_id, int(keep), *(clip_line(line) for line in lines))

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
        has_error = "0" if error is None else "1"
        error_text = "" if error is None else one_line(error)
        args = (job_id, status.value, repr(now_ts()), message, has_error, error_text, dump_json(result))
        return self._run("finish", *args) == 1

    def request_cancel(self, job_id: str) -> bool:
        """Cancel a pending job at once or flag a running one; return False if it is not active."""
        return self._run("cancel", job_id, repr(now_ts()), CANCELLED_BEFORE_START) == 1

    def heartbeat(self, job_id: str) -> bool:
        """Record that the job's owner is alive; return False if the job is no longer active."""
        return self._run("progress", job_id, repr(now_ts())) == 1

    def mark_interrupted(self, timeout_s: float) -> builtins.list[str]:
        """Fail active jobs whose heartbeat is older than timeout_s; return their ids."""
        now = now_ts()
        return [
            str(job_id) for job_id in self._run("mark_interrupted", repr(now - timeout_s), repr(now), INTERRUPTED_ERROR)
        ]

    def purge(self, older_than_s: float) -> int:
        """Delete jobs that finished more than older_than_s ago; return how many."""
        cutoff, total = repr(now_ts() - older_than_s), 0
        while True:
            count = int(self._run("purge", cutoff, _PURGE_BATCH))
            total += count
            if count < _PURGE_BATCH:
                return total


def _to_job(fields: dict[str, str], log: builtins.list[str]) -> Job:
    """Build a Job from a job hash and its log list."""

    def number(name: str) -> int:
        return int(fields.get(name) or 0)

    def stamp(name: str) -> datetime | None:
        value = fields.get(name)
        return to_datetime(float(value)) if value else None

    return Job(
        id=fields["id"],
        kind=JobKind(fields["kind"]),
        target=fields["target"],
        status=ProcessingStatus(fields["status"]),
        params=json.loads(fields.get("params") or "{}"),
        started_by=fields.get("started_by", ""),
        files_done=number("files_done"),
        files_total=number("files_total"),
        bytes_done=number("bytes_done"),
        bytes_total=number("bytes_total"),
        message=fields.get("message", ""),
        error=fields.get("error"),
        result=json.loads(fields.get("result") or "{}"),
        log_tail=log,
        cancel_requested=fields.get("cancel_requested") == "1",
        created_at=stamp("created_at"),
        started_at=stamp("started_at"),
        finished_at=stamp("finished_at"),
        heartbeat_at=stamp("heartbeat_at"),
    )
