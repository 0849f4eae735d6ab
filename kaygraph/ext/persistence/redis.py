"""RedisStore: runs in Redis (redis-py); finished runs expire natively with ``PEXPIREAT``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kaygraph.core.exceptions import CheckpointCorruptError, PersistenceError

from .abc import ANY_OWNER, CheckpointStore, RunInfo
from .base import (
    check_run_fields,
    missing_extra,
    purge_quietly,
    readable_runs,
    redact_url,
    run_from_row,
    select_runs,
    sort_key,
)
from .leases import deleted_run_error, lost_lease_error, stale_writer_error

try:
    import redis as redis_py
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("RedisStore", "redis") from exc

# Every script gets KEYS = run hash, records hash, index (run ids by creation time), expiries
# (run ids by expiry time), updates (run ids by updated_at) and ARGV[1] = run id.
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
    if field == 'updated_at' and value ~= cjson.null then
      redis.call('ZADD', KEYS[5], tonumber(value), ARGV[1])
      redis.call('PUBLISH', KEYS[5], ARGV[1])
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
    redis.call('ZREM', KEYS[5], run_id)
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

# ARGV: run_id, seq, record, changes ('' for none), ranges to prune (JSON [[low, high], ...] or ''),
# owner ('' for any).
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
  local ranges = cjson.decode(ARGV[5])
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
    local seq = tonumber(field)
    for _, range in ipairs(ranges) do
      if seq >= range[1] and seq < range[2] then
        redis.call('HDEL', KEYS[2], field)
        break
      end
    end
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

_PAGE = 500


def _text(value: Any) -> str | None:
    return None if value is None else repr(value) if isinstance(value, float) else str(value)


class RedisStore(CheckpointStore):
    """Runs in Redis: a hash of metadata and a hash of records per run, plus a sorted index.

    Keys: ``<prefix>run:<run_id>``, ``<prefix>records:<run_id>``, ``<prefix>runs`` (run ids by
    creation time), ``<prefix>expiries`` and ``<prefix>updates`` (run ids by last change). Every
    write is one Lua script, so it is atomic and one round trip. The server is pinged when the
    store is made, so a wrong URL fails at once with a ``PersistenceError`` naming it.
    """

    backend = "redis"

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "kaygraph:", client: Any = None
    ) -> None:
        self.url = url
        self.prefix = prefix
        try:
            self.client: Any = client if client is not None else redis_py.Redis.from_url(url)
        except ValueError as exc:
            raise PersistenceError(f"invalid Redis store URL {redact_url(url)!r}: {exc}") from exc
        if client is None:
            with self._errors():
                self.client.ping()
        self._pubsub: Any = None
        self._create = self.client.register_script(_CREATE)
        self._update = self.client.register_script(_UPDATE)
        self._append = self.client.register_script(_APPEND)
        self._purge = self.client.register_script(_PURGE)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Driver errors as ``PersistenceError`` naming the store (password hidden)."""
        try:
            yield
        except redis_py.exceptions.RedisError as exc:
            raise PersistenceError(
                f"the Redis store {self.describe()} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _keys(self, run_id: str) -> list[str]:
        """The keys every script gets: run hash, records hash, index, expiries and updates."""
        prefix = self.prefix
        return [
            f"{prefix}run:{run_id}",
            f"{prefix}records:{run_id}",
            f"{prefix}runs",
            f"{prefix}expiries",
            f"{prefix}updates",
        ]

    def create_run(self, info: RunInfo, first_record: bytes) -> bool:
        purge_quietly(self)
        row = json.dumps({name: _text(getattr(info, name)) for name in RunInfo.FIELDS})
        with self._errors():
            created = self._create(
                keys=self._keys(info.run_id),
                args=[info.run_id, repr(info.created_at), row, first_record],
            )
        return bool(created)

    def get_run(self, run_id: str) -> RunInfo | None:
        try:
            fields = self.client.hgetall(self._keys(run_id)[0])
        except redis_py.exceptions.ResponseError as exc:
            fields = exc  # a key of the wrong type: named below as a damaged run
        except redis_py.exceptions.RedisError:
            with self._errors():
                raise
        return self._info(run_id, fields)

    def _info(self, run_id: str, fields: Any) -> RunInfo | None:
        """The run from its hash; ``CheckpointCorruptError`` naming the run if the hash is damaged
        (or the key is not a hash at all)."""
        if isinstance(fields, Exception):
            raise CheckpointCorruptError(
                f"the metadata of run {run_id!r} in {self.describe()} is damaged (the key "
                f"{self._keys(run_id)[0]!r} cannot be read as a hash: {fields}); delete the run "
                f"(kaygraph runs delete {run_id} --force) and start it again.",
                run_id=run_id,
            )
        if not fields:
            return None
        values = {key.decode(errors="replace"): value for key, value in fields.items()}
        return run_from_row(values, run_id, self.describe())

    def _changes(self, changes: Mapping[str, Any]) -> str:
        check_run_fields(changes)
        return json.dumps({name: _text(value) for name, value in changes.items()})

    def update_run(self, run_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        check = "0" if if_owner is ANY_OWNER else "1"
        expected = "" if if_owner is ANY_OWNER or if_owner is None else if_owner
        args = [run_id, self._changes(changes), check, expected]
        with self._errors():
            return bool(self._update(keys=self._keys(run_id), args=args))

    def append(
        self,
        run_id: str,
        seq: int,
        record: bytes,
        *,
        owner: str | None = None,
        changes: Mapping[str, Any] | None = None,
        prune: Sequence[tuple[int, int]] = (),
    ) -> None:
        args: list[Any] = [
            run_id,
            seq,
            record,
            self._changes(changes) if changes else "",
            json.dumps([list(pair) for pair in prune]) if prune else "",
            owner or "",
        ]
        with self._errors():
            written = self._append(keys=self._keys(run_id), args=args)
        if written == -1:
            raise deleted_run_error(run_id)
        if written == -2:
            raise lost_lease_error(run_id, seq)
        if not written:
            raise stale_writer_error(run_id, seq)

    def read(
        self,
        run_id: str,
        *,
        start: int = 0,
        stop: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[tuple[int, bytes]]:
        key = self._keys(run_id)[1]
        with self._errors():
            fields = self.client.hkeys(key)
        try:
            numbers = [int(field) for field in fields]
        except ValueError as exc:
            raise CheckpointCorruptError(
                f"the checkpoint records of run {run_id!r} in {self.describe()} are damaged (a record "
                f"field is not a number: {exc}); delete the run (kaygraph runs delete {run_id} --force) "
                "and start it again.",
                run_id=run_id,
            ) from exc
        seqs = sorted(
            (seq for seq in numbers if seq >= start and (stop is None or seq < stop)), reverse=descending
        )[:limit]
        with self._errors():
            if not seqs:
                return []
            records = self.client.hmget(key, [str(seq) for seq in seqs])
        return [(seq, data) for seq, data in zip(seqs, records, strict=True) if data is not None]

    def _runs_from(self, run_ids: list[bytes]) -> list[RunInfo]:
        """The runs of ``run_ids`` (damaged ones skipped and named); ids whose run expired
        natively are dropped from the indexes."""
        if not run_ids:
            return []
        meta_key = self._keys("")[0]
        with self._errors():
            pipeline = self.client.pipeline(transaction=False)
            for run_id in run_ids:
                pipeline.hgetall(meta_key + run_id.decode(errors="replace"))
            rows = pipeline.execute(raise_on_error=False)
        gone = [run_id for run_id, fields in zip(run_ids, rows, strict=True) if fields == {}]
        if gone:  # expired natively before a purge dropped them from the index
            with self._errors():
                self.client.zrem(self._keys("")[2], *gone)
                self.client.zrem(self._keys("")[4], *gone)
        return readable_runs(
            ((run_id.decode(errors="replace"), fields) for run_id, fields in zip(run_ids, rows, strict=True)),
            self._info,
        )

    def list_runs(
        self,
        *,
        graph_name: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[RunInfo]:
        low = "-inf" if since is None else repr(since)
        high = "+inf" if until is None else f"({until!r}"
        if before is not None and (until is None or before[0] < until):
            high = repr(float(before[0]))
        index = self._keys("")[2]
        runs: list[RunInfo] = []
        offset = 0
        # In pages, newest first: bounded memory however many runs the store holds.
        while limit is None or len(runs) < limit:
            with self._errors():
                run_ids = self.client.zrevrangebyscore(index, high, low, start=offset, num=_PAGE)
            offset += len(run_ids)
            page = select_runs(
                self._runs_from(run_ids),
                graph_name=graph_name,
                status=status,
                since=since,
                until=until,
                limit=None,
                before=before,
            )
            runs.extend(page)
            if len(run_ids) < _PAGE:
                break
        runs.sort(key=sort_key, reverse=True)
        return runs if limit is None else runs[:limit]

    def changed_since(self, since: float, *, limit: int | None = None) -> list[RunInfo]:
        with self._errors():
            run_ids = self.client.zrangebyscore(
                self._keys("")[4], f"({since!r}", "+inf", start=0 if limit else None, num=limit
            )
        runs = self._runs_from(run_ids)
        runs.sort(key=lambda info: info.updated_at)
        return runs

    def delete_run(self, run_id: str) -> bool:
        meta, records, index, expiries, updates = self._keys(run_id)
        with self._errors():
            pipeline = self.client.pipeline(transaction=True)
            pipeline.delete(meta, records)
            pipeline.zrem(index, run_id)
            pipeline.zrem(expiries, run_id)
            pipeline.zrem(updates, run_id)
            deleted, indexed, _, _ = pipeline.execute()
        return bool(deleted or indexed)

    def purge_expired(self, now: float | None = None) -> int:
        """Redis expires run keys by itself; this also drops their index entries (and runs already
        due at ``now``). Every new run does the same, so the index never keeps expired runs long."""
        now_ms = int((time.time() if now is None else now) * 1000)
        total = 0
        while True:  # in batches: one script call never blocks Redis for long
            with self._errors():
                purged = int(self._purge(keys=self._keys(""), args=["", self.prefix, now_ms, _PURGE_BATCH]))
            total += purged
            if purged < _PURGE_BATCH:
                return total

    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a writer's announcement on the ``<prefix>updates`` channel (Redis pub/sub)."""
        with self._errors():
            if self._pubsub is None:
                self._pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self._keys("")[4])
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if self._pubsub.get_message(timeout=left) is not None:
                    while self._pubsub.get_message(timeout=0) is not None:
                        pass  # one wake-up for a burst of changes
                    return True

    def close(self) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
        self.client.close()

    def describe(self) -> str:
        return f"{redact_url(self.url)} (prefix {self.prefix!r})"


__all__ = ["RedisStore"]
