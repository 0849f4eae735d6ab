"""MemoryScheduleStore: schedules in this process only (tests, notebooks, one-process apps)."""

from __future__ import annotations

import copy
import heapq
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .abc import ACTIVE_STATUSES, ANY_OWNER, Fire, Schedule, ScheduleStore
from .base import check_changes, wake_key


class MemoryScheduleStore(ScheduleStore):
    """Dictionaries behind one lock, plus a heap of wake times so finding due schedules among
    thousands costs a heap pop, not a scan. ``MemoryScheduleStore.named("x")`` (``memory://x``)
    is the same store everywhere in the process."""

    backend = "memory"
    _named: ClassVar[dict[str, MemoryScheduleStore]] = {}
    _named_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._schedules: dict[str, Schedule] = {}
        self._fires: dict[str, Fire] = {}
        self._fires_of: dict[str, dict[str, Fire]] = {}
        self._active: dict[str, dict[str, Fire]] = {}  # pending and running fires, per schedule
        self._keys: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self.name = ""

    @classmethod
    def named(cls, name: str) -> MemoryScheduleStore:
        """The process-wide store called ``name`` (created on first use)."""
        with cls._named_lock:
            store = cls._named.get(name)
            if store is None:
                store = cls._named[name] = cls()
                store.name = name
            return store

    def _reindex(self, name: str) -> None:
        schedule = self._schedules.get(name)
        key = None if schedule is None else wake_key(schedule)
        if key is None:
            self._keys.pop(name, None)
        elif self._keys.get(name) != key:
            self._keys[name] = key
            heapq.heappush(self._heap, (key, name))

    # -- schedules ----------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> bool:
        with self._lock:
            if schedule.name in self._schedules and not replace:
                return False
            self._schedules[schedule.name] = copy.deepcopy(schedule)
            self._reindex(schedule.name)
            return True

    def get_schedule(self, name: str) -> Schedule | None:
        with self._lock:
            schedule = self._schedules.get(name)
            return None if schedule is None else copy.deepcopy(schedule)

    def list_schedules(self) -> list[Schedule]:
        with self._lock:
            return [copy.deepcopy(self._schedules[name]) for name in sorted(self._schedules)]

    def _change(self, name: str, changes: Mapping[str, Any]) -> bool:
        schedule = self._schedules.get(name)
        if schedule is None:
            return False
        for field, value in changes.items():
            setattr(schedule, field, bool(value) if field in ("paused", "poked") else value)
        self._reindex(name)
        return True

    def update_schedule(self, name: str, changes: Mapping[str, Any]) -> bool:
        check_changes(changes, Schedule.STATE_FIELDS, "schedule")
        with self._lock:
            return self._change(name, changes)

    def remove_schedule(self, name: str) -> bool:
        with self._lock:
            for fire_id, fire in list(self._active.get(name, {}).items()):
                if fire.status == "pending":
                    del self._fires[fire_id]
                    del self._fires_of[name][fire_id]
                    del self._active[name][fire_id]
            removed = self._schedules.pop(name, None) is not None
            self._keys.pop(name, None)
            return removed

    def lock_due(self, now: float, owner: str, until: float, limit: int) -> list[Schedule]:
        locked: list[Schedule] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now and len(locked) < limit:
                key, name = heapq.heappop(self._heap)
                if self._keys.get(name) != key:
                    continue  # stale entry: the schedule changed or is gone
                del self._keys[name]
                schedule = self._schedules[name]
                schedule.lock_owner, schedule.lock_until, schedule.poked = owner, until, False
                self._reindex(name)
                # Shallow: the engine never changes a schedule's spec dicts, and deep copies of
                # thousands of due schedules a second were most of this store's cost.
                locked.append(copy.copy(schedule))
        return locked

    def unlock(self, name: str, owner: str, changes: Mapping[str, Any]) -> bool:
        check_changes(changes, Schedule.STATE_FIELDS, "schedule")
        with self._lock:
            schedule = self._schedules.get(name)
            if schedule is None or schedule.lock_owner != owner:
                return False
            return self._change(name, {**changes, "lock_owner": None, "lock_until": None})

    def poke(self, name: str) -> None:
        with self._lock:
            self._change(name, {"poked": True})

    def next_wake(self) -> float | None:
        with self._lock:
            while self._heap and self._keys.get(self._heap[0][1]) != self._heap[0][0]:
                heapq.heappop(self._heap)
            return self._heap[0][0] if self._heap else None

    # -- fires --------------------------------------------------------------------------------

    def put_fires(self, fires: Sequence[Fire]) -> int:
        inserted = 0
        with self._lock:
            for fire in fires:
                if fire.fire_id in self._fires:
                    continue
                stored = copy.copy(fire)
                self._fires[fire.fire_id] = stored
                self._fires_of.setdefault(fire.schedule, {})[fire.fire_id] = stored
                if stored.status in ACTIVE_STATUSES:
                    self._active.setdefault(fire.schedule, {})[fire.fire_id] = stored
                inserted += 1
        return inserted

    def get_fire(self, fire_id: str) -> Fire | None:
        with self._lock:
            fire = self._fires.get(fire_id)
            return None if fire is None else copy.copy(fire)

    def active_fires(self, schedule: str) -> list[Fire]:
        with self._lock:
            active = [copy.copy(fire) for fire in self._active.get(schedule, {}).values()]
        return sorted(active, key=lambda fire: (fire.fire_time, fire.fire_id))

    def list_fires(
        self,
        *,
        schedule: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[Fire]:
        with self._lock:
            pool = self._fires.values() if schedule is None else self._fires_of.get(schedule, {}).values()
            chosen = [
                copy.copy(fire)
                for fire in pool
                if (status is None or fire.status == status)
                and (since is None or fire.fire_time >= since)
                and (until is None or fire.fire_time < until)
            ]
        chosen.sort(key=lambda fire: (fire.fire_time, fire.fire_id), reverse=True)
        return chosen if limit is None else chosen[:limit]

    def update_fire(self, fire_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        check_changes(changes, Fire.FIELDS, "fire")
        with self._lock:
            fire = self._fires.get(fire_id)
            if fire is None or (if_owner is not ANY_OWNER and fire.owner != if_owner):
                return False
            for field, value in changes.items():
                setattr(fire, field, value)
            if fire.status not in ACTIVE_STATUSES:
                self._active.get(fire.schedule, {}).pop(fire_id, None)
            else:
                self._active.setdefault(fire.schedule, {})[fire_id] = fire
            return True

    def renew_fires(self, fire_ids: Sequence[str], owner: str, until: float) -> list[str]:
        cancelled = []
        with self._lock:
            for fire_id in fire_ids:
                fire = self._fires.get(fire_id)
                if fire is None or fire.owner != owner:
                    continue
                if fire.status == "running":
                    fire.lease_until = until
                if fire.cancel_requested:
                    cancelled.append(fire_id)
        return cancelled

    def describe(self) -> str:
        return f"memory://{self.name}"


__all__ = ["MemoryScheduleStore"]
