"""RedisScheduleStore: schedules in Redis (redis-py); every change is one atomic Lua script."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .abc import ACTIVE_STATUSES, ANY_OWNER, Fire, Schedule, ScheduleStore
from .base import (
    check_changes,
    fire_from_row,
    fire_row,
    missing_extra,
    redact_url,
    schedule_from_row,
    schedule_row,
    unreachable,
)

try:
    import redis as redis_py
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("RedisScheduleStore", "redis") from exc

# Keys (P = prefix): P.."s:"..name schedule hash, P.."names" set, P.."wake" zset (name -> the
# moment it is next due, see base.wake_key), P.."f:"..id fire hash, P.."fires" and
# P.."fires:"..schedule zsets (id -> fire time), P.."active:"..schedule set of pending/running ids.
# Hash values are JSON text, so types survive and owners compare as strings.
_FUNCTIONS = """
local P = ARGV[1]
local function decoded(text)
  if not text then return nil end
  local value = cjson.decode(text)
  if value == cjson.null then return nil end
  return value
end
local function rekey(name)
  local key = P .. 's:' .. name
  if redis.call('EXISTS', key) == 0 then
    redis.call('ZREM', P .. 'wake', name)
    return
  end
  local v = redis.call('HMGET', key, 'wake_at', 'poked', 'lock_owner', 'lock_until')
  local due = decoded(v[1])
  if decoded(v[2]) == 1 then due = 0 end
  local owner, lock_until = decoded(v[3]), decoded(v[4])
  if owner and lock_until and (due == nil or lock_until > due) then due = lock_until end
  if due == nil then
    redis.call('ZREM', P .. 'wake', name)
  else
    redis.call('ZADD', P .. 'wake', string.format('%.6f', due), name)
  end
end
local function set_pairs(key, first)
  for i = first, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
"""

# ARGV: P, name, replace (0/1), field, value, ...
_ADD = (
    _FUNCTIONS
    + """
local key = P .. 's:' .. ARGV[2]
if ARGV[3] == '0' and redis.call('EXISTS', key) == 1 then return 0 end
redis.call('DEL', key)
set_pairs(key, 4)
redis.call('SADD', P .. 'names', ARGV[2])
rekey(ARGV[2])
return 1
"""
)

# ARGV: P, name, owner (JSON, or '' for no check), field, value, ...
_UPDATE = (
    _FUNCTIONS
    + """
local key = P .. 's:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', key, 'lock_owner') ~= ARGV[3] then return 0 end
set_pairs(key, 4)
rekey(ARGV[2])
return 1
"""
)

# ARGV: P, now, owner (JSON), until, limit
_LOCK_DUE = (
    _FUNCTIONS
    + """
local names = redis.call('ZRANGEBYSCORE', P .. 'wake', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[5]))
local locked = {}
for _, name in ipairs(names) do
  local key = P .. 's:' .. name
  redis.call('HSET', key, 'lock_owner', ARGV[3], 'lock_until', ARGV[4], 'poked', '0')
  rekey(name)
  locked[#locked + 1] = redis.call('HGETALL', key)
end
return locked
"""
)

# ARGV: P, name
_REMOVE = (
    _FUNCTIONS
    + """
local name = ARGV[2]
for _, id in ipairs(redis.call('SMEMBERS', P .. 'active:' .. name)) do
  if redis.call('HGET', P .. 'f:' .. id, 'status') == '"pending"' then
    redis.call('DEL', P .. 'f:' .. id)
    redis.call('ZREM', P .. 'fires', id)
    redis.call('ZREM', P .. 'fires:' .. name, id)
    redis.call('SREM', P .. 'active:' .. name, id)
  end
end
redis.call('SREM', P .. 'names', name)
redis.call('ZREM', P .. 'wake', name)
return redis.call('DEL', P .. 's:' .. name)
"""
)

# ARGV: P, id, schedule, fire_time, active (0/1), field, value, ...
_PUT_FIRE = (
    _FUNCTIONS
    + """
local key = P .. 'f:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then return 0 end
set_pairs(key, 6)
redis.call('ZADD', P .. 'fires', ARGV[4], ARGV[2])
redis.call('ZADD', P .. 'fires:' .. ARGV[3], ARGV[4], ARGV[2])
if ARGV[5] == '1' then redis.call('SADD', P .. 'active:' .. ARGV[3], ARGV[2]) end
return 1
"""
)

# ARGV: P, id, check (0/1), expected owner (JSON), field, value, ...
_UPDATE_FIRE = (
    _FUNCTIONS
    + """
local key = P .. 'f:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[3] == '1' and (redis.call('HGET', key, 'owner') or 'null') ~= ARGV[4] then return 0 end
set_pairs(key, 5)
local status = decoded(redis.call('HGET', key, 'status'))
local schedule = decoded(redis.call('HGET', key, 'schedule'))
if status == 'pending' or status == 'running' then
  redis.call('SADD', P .. 'active:' .. schedule, ARGV[2])
else
  redis.call('SREM', P .. 'active:' .. schedule, ARGV[2])
end
return 1
"""
)

# ARGV: P, owner (JSON), until (JSON), id, ...
_RENEW = (
    _FUNCTIONS
    + """
local cancelled = {}
for i = 4, #ARGV do
  local key = P .. 'f:' .. ARGV[i]
  if redis.call('HGET', key, 'owner') == ARGV[2] then
    if redis.call('HGET', key, 'status') == '"running"' then
      redis.call('HSET', key, 'lease_until', ARGV[3])
    end
    if redis.call('HGET', key, 'cancel_requested') == '1' then cancelled[#cancelled + 1] = ARGV[i] end
  end
end
return cancelled
"""
)


def _pairs(values: Mapping[str, Any]) -> list[str]:
    flat: list[str] = []
    for field, value in values.items():
        flat += [field, json.dumps(value)]
    return flat


def _decode(flat: Sequence[str] | Mapping[str, str]) -> dict[str, Any]:
    items = flat.items() if isinstance(flat, Mapping) else zip(flat[::2], flat[1::2], strict=True)
    return {field: json.loads(value) for field, value in items}


class RedisScheduleStore(ScheduleStore):
    """Schedules and fires as Redis hashes under ``prefix``; a sorted set of wake times finds the
    due schedules, and each lock, claim and change runs as one Lua script (atomic on the server)."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = "kaygraph:sched:") -> None:
        self.url = url
        self.prefix = prefix
        try:
            self._client = redis_py.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=10, health_check_interval=30
            )
            self._client.ping()
        except (redis_py.RedisError, ValueError, OSError) as exc:
            raise unreachable("Redis", url, exc) from exc
        register = self._client.register_script
        self._add, self._update, self._lock_due = register(_ADD), register(_UPDATE), register(_LOCK_DUE)
        self._remove, self._put_fire = register(_REMOVE), register(_PUT_FIRE)
        self._update_fire, self._renew = register(_UPDATE_FIRE), register(_RENEW)

    def _call(self, script: Any, *args: Any) -> Any:
        try:
            return script(args=[self.prefix, *args])
        except redis_py.ConnectionError as exc:
            raise unreachable("Redis", self.url, exc) from exc

    # -- schedules ----------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> bool:
        row = schedule_row(schedule)
        row["spec"] = json.loads(row["spec"])
        return bool(self._call(self._add, schedule.name, int(replace), *_pairs(row)))

    def _schedule(self, values: dict[str, Any]) -> Schedule:
        values["spec"] = json.dumps(values["spec"])
        return schedule_from_row(values)

    def get_schedule(self, name: str) -> Schedule | None:
        flat = self._client.hgetall(self.prefix + "s:" + name)
        return self._schedule(_decode(flat)) if flat else None

    def list_schedules(self) -> list[Schedule]:
        names = sorted(self._client.smembers(self.prefix + "names"))
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.prefix + "s:" + name)
        return [self._schedule(_decode(flat)) for flat in pipe.execute() if flat]

    def update_schedule(self, name: str, changes: Mapping[str, Any]) -> bool:
        values = check_changes(changes, Schedule.STATE_FIELDS, "schedule")
        return bool(self._call(self._update, name, "", *_pairs(values)))

    def remove_schedule(self, name: str) -> bool:
        return bool(self._call(self._remove, name))

    def lock_due(self, now: float, owner: str, until: float, limit: int) -> list[Schedule]:
        rows = self._call(self._lock_due, repr(now), json.dumps(owner), json.dumps(until), int(limit))
        return [self._schedule(_decode(flat)) for flat in rows]

    def unlock(self, name: str, owner: str, changes: Mapping[str, Any]) -> bool:
        values = check_changes(changes, Schedule.STATE_FIELDS, "schedule")
        values.update(lock_owner=None, lock_until=None)
        return bool(self._call(self._update, name, json.dumps(owner), *_pairs(values)))

    def poke(self, name: str) -> None:
        self._call(self._update, name, "", "poked", "1")

    def next_wake(self) -> float | None:
        first = self._client.zrange(self.prefix + "wake", 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # -- fires --------------------------------------------------------------------------------

    def put_fires(self, fires: Sequence[Fire]) -> int:
        inserted = 0
        for fire in fires:
            active = int(fire.status in ACTIVE_STATUSES)
            args = (fire.fire_id, fire.schedule, repr(fire.fire_time), active, *_pairs(fire_row(fire)))
            inserted += int(self._call(self._put_fire, *args))
        return inserted

    def _fetch(self, fire_ids: Sequence[str]) -> list[Fire]:
        pipe = self._client.pipeline(transaction=False)
        for fire_id in fire_ids:
            pipe.hgetall(self.prefix + "f:" + fire_id)
        return [fire_from_row(_decode(flat)) for flat in pipe.execute() if flat]

    def get_fire(self, fire_id: str) -> Fire | None:
        found = self._fetch([fire_id])
        return found[0] if found else None

    def active_fires(self, schedule: str) -> list[Fire]:
        fires = self._fetch(sorted(self._client.smembers(self.prefix + "active:" + schedule)))
        return sorted(
            (fire for fire in fires if fire.status in ACTIVE_STATUSES), key=lambda f: (f.fire_time, f.fire_id)
        )

    def list_fires(
        self,
        *,
        schedule: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[Fire]:
        key = self.prefix + ("fires" if schedule is None else "fires:" + schedule)
        high = f"({until!r}" if until is not None else "+inf"
        low = repr(since) if since is not None else "-inf"
        chosen: list[Fire] = []
        offset, page = 0, 500
        while limit is None or len(chosen) < limit:
            ids = self._client.zrevrangebyscore(key, high, low, start=offset, num=page)
            if not ids:
                break
            offset += len(ids)
            fires = self._fetch(ids)
            fires.sort(key=lambda f: (f.fire_time, f.fire_id), reverse=True)
            chosen += [fire for fire in fires if status is None or fire.status == status]
        return chosen if limit is None else chosen[:limit]

    def update_fire(self, fire_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        values = check_changes(changes, Fire.FIELDS, "fire")
        check = 0 if if_owner is ANY_OWNER else 1
        expected = "" if if_owner is ANY_OWNER else json.dumps(if_owner)
        return bool(self._call(self._update_fire, fire_id, check, expected, *_pairs(values)))

    def renew_fires(self, fire_ids: Sequence[str], owner: str, until: float) -> list[str]:
        if not fire_ids:
            return []
        return list(self._call(self._renew, json.dumps(owner), json.dumps(until), *fire_ids))

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        return f"{redact_url(self.url)} (prefix {self.prefix!r})"


__all__ = ["RedisScheduleStore"]
