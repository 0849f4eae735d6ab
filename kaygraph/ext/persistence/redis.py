"""RedisStore: runs in Redis (redis-py); finished runs expire natively with ``PEXPIREAT``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from kaygraph.core.exceptions import CheckpointCorruptError

from .abc import ANY_OWNER, CheckpointStore, RunInfo
from .base import (
    check_run_fields,
    deleted_run_error,
    logger,
    lost_lease_error,
    missing_extra,
    purge_quietly,
    select_runs,
    stale_writer_error,
)

try:
    import redis as redis_py
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("RedisStore", "redis") from exc

# Every script gets KEYS = run hash, records hash, index (run ids by creation time), expiries
# (run ids by expiry time) and ARGV[1] = run id.
#
# apply_changes sets the JSON {field: text or null} on the run hash. An expiry time makes both keys
# of the run expire natively then and files the run under that time in the expiries set, so the
# index entry goes too (purge, run on every new run); null makes the run persistent again.
_FUNCTIONS = """
local function apply_changes(changes_json)
  local changes = cjson.decode(changes_json)
  for field, value in pairs(changes) do
    if value == cjson.null then
      redis.call('HDEL', KEYS[1], field)
    else
      redis.call('HSET', KEYS[1], field, value)
    end
    if field == 'expires_at' then
      if value == cjson.null then
        redis.call('PERSIST', KEYS[1])
        redis.call('PERSIST', KEYS[2])
        redis.call('ZREM', KEYS[4], ARGV[1])
      else
        local at = math.floor(tonumber(value) * 1000)
        redis.call('PEXPIREAT', KEYS[1], at)
        redis.call('PEXPIREAT', KEYS[2], at)
        redis.call('ZADD', KEYS[4], at, ARGV[1])
      end
    end
  end
end

local function purge(prefix, now_ms, limit)
  local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now_ms, 'LIMIT', 0, limit)
  for _, run_id in ipairs(due) do
    redis.call('DEL', prefix .. 'run:' .. run_id, prefix .. 'records:' .. run_id)
    redis.call('ZREM', KEYS[3], run_id)
    redis.call('ZREM', KEYS[4], run_id)
  end
  return #due
end
"""

# ARGV: run_id, created_at, the whole row as JSON, record 0.
_CREATE = (
    _FUNCTIONS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], '0', ARGV[4])
apply_changes(ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""
)

# ARGV: run_id, changes, check_owner ('1'/'0'), expected owner ('' for none).
_UPDATE = (
    _FUNCTIONS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  local owner = redis.call('HGET', KEYS[1], 'lease_owner') or ''
  if owner ~= ARGV[4] then return 0 end
end
apply_changes(ARGV[2])
return 1
"""
)

# ARGV: run_id, seq, record, changes ('' for none), prune_below ('' for none), owner ('' for any).
# Returns 1, or 0: record seq exists, -1: no such run (deleted), -2: the lease is not the owner's.
# The run must exist, so a writer never recreates a deleted run (or records without their run).
_APPEND = (
    _FUNCTIONS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[6] ~= '' and redis.call('HGET', KEYS[1], 'lease_owner') ~= ARGV[6] then return -2 end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3]) == 0 then return 0 end
if ARGV[4] ~= '' then apply_changes(ARGV[4]) end
if ARGV[5] ~= '' then
  local below = tonumber(ARGV[5])
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    if tonumber(field) < below then redis.call('HDEL', KEYS[2], field) end
  end
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""
)

# ARGV: run_id (unused), prefix, now in ms, at most this many runs (so Redis is never blocked long).
_PURGE = _FUNCTIONS + "return purge(ARGV[2], ARGV[3], ARGV[4])"
_PURGE_BATCH = 1000

_FLOATS = ("created_at", "updated_at", "lease_expires_at", "expires_at")


def _text(value: Any) -> str | None:
    return None if value is None else repr(value) if isinstance(value, float) else str(value)


class RedisStore(CheckpointStore):
    """Runs in Redis: a hash of metadata and a hash of records per run, plus a sorted index.

    Keys: ``<prefix>run:<run_id>``, ``<prefix>records:<run_id>`` and ``<prefix>runs`` (run ids by
    creation time). Every write is one Lua script, so it is atomic and one round trip.
    """

    backend = "redis"

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "kaygraph:", client: Any = None
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.client: Any = client if client is not None else redis_py.Redis.from_url(url)
        self._create = self.client.register_script(_CREATE)
        self._update = self.client.register_script(_UPDATE)
        self._append = self.client.register_script(_APPEND)
        self._purge = self.client.register_script(_PURGE)

    def _keys(self, run_id: str) -> list[str]:
        """The keys every script gets: run hash, records hash, index and expiries."""
        prefix = self.prefix
        return [f"{prefix}run:{run_id}", f"{prefix}records:{run_id}", f"{prefix}runs", f"{prefix}expiries"]

    def create_run(self, info: RunInfo, first_record: bytes) -> bool:
        purge_quietly(self)
        row = json.dumps({name: _text(getattr(info, name)) for name in RunInfo.FIELDS})
        created = self._create(
            keys=self._keys(info.run_id),
            args=[info.run_id, repr(info.created_at), row, first_record],
        )
        return bool(created)

    def get_run(self, run_id: str) -> RunInfo | None:
        return self._info(run_id, self.client.hgetall(self._keys(run_id)[0]))

    def _info(self, run_id: str, fields: Mapping[bytes, bytes]) -> RunInfo | None:
        """The run from its hash; ``CheckpointCorruptError`` naming the run if the hash is damaged."""
        if not fields:
            return None
        try:
            values: dict[str, Any] = {key.decode(): value.decode() for key, value in fields.items()}
            for name in _FLOATS:
                if name in values:
                    values[name] = float(values[name])
            values["steps"] = int(values.get("steps", 0))
            info = RunInfo(**values)
            if info.run_id != run_id:
                raise ValueError(f"the hash names run {info.run_id!r}")
        except Exception as exc:
            raise CheckpointCorruptError(
                f"the metadata of run {run_id!r} in {self.describe()} is damaged ({type(exc).__name__}: "
                f"{exc}); delete the run (kaygraph runs delete {run_id} --force) and start it again.",
                run_id=run_id,
            ) from exc
        return info

    def _changes(self, changes: Mapping[str, Any]) -> str:
        check_run_fields(changes)
        return json.dumps({name: _text(value) for name, value in changes.items()})

    def update_run(self, run_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        check = "0" if if_owner is ANY_OWNER else "1"
        expected = "" if if_owner is ANY_OWNER or if_owner is None else if_owner
        args = [run_id, self._changes(changes), check, expected]
        return bool(self._update(keys=self._keys(run_id), args=args))

    def append(
        self,
        run_id: str,
        seq: int,
        record: bytes,
        *,
        owner: str | None = None,
        changes: Mapping[str, Any] | None = None,
        prune_below: int | None = None,
    ) -> None:
        args: list[Any] = [
            run_id,
            seq,
            record,
            self._changes(changes) if changes else "",
            "" if prune_below is None else prune_below,
            owner or "",
        ]
        written = self._append(keys=self._keys(run_id), args=args)
        if written == -1:
            raise deleted_run_error(run_id)
        if written == -2:
            raise lost_lease_error(run_id, seq)
        if not written:
            raise stale_writer_error(run_id, seq)

    def load(self, run_id: str) -> list[tuple[int, bytes]]:
        records = self.client.hgetall(self._keys(run_id)[1])
        return sorted((int(seq), data) for seq, data in records.items())

    def list_runs(
        self,
        *,
        graph_name: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        low = "-inf" if since is None else repr(since)
        high = "+inf" if until is None else f"({until!r}"
        meta_key, _, index, _ = self._keys("")
        run_ids = self.client.zrevrangebyscore(index, high, low)
        pipeline = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipeline.hgetall(meta_key + run_id.decode())
        runs, gone = [], []
        for run_id, fields in zip(run_ids, pipeline.execute(), strict=True):
            try:
                info = self._info(run_id.decode(errors="replace"), fields)
            except CheckpointCorruptError as exc:
                # One damaged run must not hide every other run: skip it, say which.
                logger.warning("skipping run %r in list_runs: %s", run_id.decode(errors="replace"), exc)
                continue
            if info is None:
                gone.append(run_id)  # expired natively: drop it from the index too
            else:
                runs.append(info)
        if gone:  # expired natively before a purge dropped them from the index
            self.client.zrem(index, *gone)
        return select_runs(runs, graph_name=graph_name, status=status, since=since, until=until, limit=limit)

    def delete_run(self, run_id: str) -> bool:
        meta, records, index, expiries = self._keys(run_id)
        pipeline = self.client.pipeline(transaction=True)
        pipeline.delete(meta, records)
        pipeline.zrem(index, run_id)
        pipeline.zrem(expiries, run_id)
        deleted, indexed, _ = pipeline.execute()
        return bool(deleted or indexed)

    def purge_expired(self, now: float | None = None) -> int:
        """Redis expires run keys by itself; this also drops their index entries (and runs already
        due at ``now``). Every new run does the same, so the index never keeps expired runs long."""
        now_ms = int((time.time() if now is None else now) * 1000)
        total = 0
        while True:  # in batches: one script call never blocks Redis for long
            purged = int(self._purge(keys=self._keys(""), args=["", self.prefix, now_ms, _PURGE_BATCH]))
            total += purged
            if purged < _PURGE_BATCH:
                return total

    def close(self) -> None:
        self.client.close()

    def describe(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"redis://{parts.hostname}:{parts.port or 6379}{parts.path} (prefix {self.prefix!r})"


__all__ = ["RedisStore"]
