"""Shared parts of the schedule stores: record <-> row conversion and every SQL statement, once.

``SQLiteScheduleStore`` and ``PostgresScheduleStore`` differ only in their connection, placeholder
style and how :meth:`SQLScheduleStore.lock_due` keeps concurrent schedulers apart (``BEGIN
IMMEDIATE`` vs ``FOR UPDATE SKIP LOCKED``); the statements below serve both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from kaygraph.core.exceptions import MissingExtraError
from kaygraph.utils.urls import redact_url

from .abc import ANY_OWNER, Fire, PassWrite, Schedule, ScheduleStore
from .errors import ScheduleStoreError

_T = TypeVar("_T")
_BOOL_FIELDS = {"paused", "poked", "cancel_requested"}


def missing_extra(thing: str, package: str) -> MissingExtraError:
    """The error a backend module raises when its driver is not installed."""
    return MissingExtraError(
        f"{thing} needs the {package!r} package, which is not installed. Install it with: "
        "pip install 'kaygraph[scheduler]'",
        extra="scheduler",
        name=package,
    )


def unreachable(kind: str, url: str, exc: BaseException) -> ScheduleStoreError:
    """The error for a store server that cannot be reached or refused the connection (one line)."""
    reason = " ".join(str(exc).split()) or "no reason given"
    return ScheduleStoreError(
        f"cannot reach the {kind} schedule store at {redact_url(url)} ({type(exc).__name__}: {reason}); "
        "check that the server runs and the URL is right (--store / scheduler.url)"
    )


def schedule_row(schedule: Schedule) -> dict[str, Any]:
    """The stored columns of ``schedule``: name, its spec as JSON text, then the state fields."""
    row: dict[str, Any] = {"name": schedule.name, "spec": json.dumps(schedule.spec(), sort_keys=True)}
    for name in Schedule.STATE_FIELDS:
        value = getattr(schedule, name)
        row[name] = int(value) if name in _BOOL_FIELDS else value
    return row


def schedule_from_row(row: Mapping[str, Any]) -> Schedule:
    """The :class:`Schedule` of a stored row (as :func:`schedule_row` wrote it)."""
    spec = json.loads(row["spec"])
    state: dict[str, Any] = {name: row.get(name) for name in Schedule.STATE_FIELDS}
    for name in _BOOL_FIELDS & state.keys():
        state[name] = bool(state[name])
    for name in ("next_fire_at", "wake_at", "lock_until"):
        if state[name] is not None:
            state[name] = float(state[name])  # SQLite returns whole REAL values as ints
    state["missed"] = int(state["missed"] or 0)
    state["skipped"] = int(state["skipped"] or 0)
    return Schedule(name=row["name"], **spec, **state)


def wake_key(schedule: Schedule) -> float | None:
    """When ``schedule`` is next due for :meth:`ScheduleStore.lock_due` (None: never): its
    ``wake_at`` (0 when poked), but not before a lock held on it expires."""
    due = 0.0 if schedule.poked else schedule.wake_at
    if schedule.lock_until is not None and schedule.lock_owner is not None:
        return schedule.lock_until if due is None else max(due, schedule.lock_until)
    return due


def fire_row(fire: Fire) -> dict[str, Any]:
    """The stored columns of ``fire``."""
    return {
        name: int(getattr(fire, name)) if name in _BOOL_FIELDS else getattr(fire, name)
        for name in Fire.FIELDS
    }


def fire_from_row(row: Mapping[str, Any]) -> Fire:
    """The :class:`Fire` of a stored row."""
    values: dict[str, Any] = {name: row.get(name) for name in Fire.FIELDS}
    for name in ("fire_time", "due_at", "lease_until", "created_at", "started_at", "ended_at"):
        if values[name] is not None:
            values[name] = float(values[name])
    values["cancel_requested"] = bool(values["cancel_requested"])
    values["attempts"] = int(values["attempts"] or 0)
    return Fire(**values)


def check_changes(changes: Mapping[str, Any], allowed: Sequence[str], what: str) -> dict[str, Any]:
    """``changes`` with booleans as ints; ValueError for a field the record does not have."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {what} field(s) {sorted(unknown)}; known: {', '.join(allowed)}")
    return {name: int(value) if name in _BOOL_FIELDS else value for name, value in changes.items()}


#: When a schedule is due for lock_due (as wake_key(), lock aside): at once when poked, else at
#: wake_at. Indexed as this very expression, so finding due schedules never scans them all.
_DUE = "CASE WHEN poked = 1 THEN 0 ELSE wake_at END"
_FIRE_COLUMNS = ", ".join(Fire.FIELDS)
_SCHEDULE_COLUMNS = ", ".join(("name", "spec", *Schedule.STATE_FIELDS))


class SQLScheduleStore(ScheduleStore):
    """Every statement of the SQL schedule stores (tables ``<prefix>schedules`` and ``<prefix>fires``).

    Subclasses provide :meth:`_transaction` (a cursor in one transaction; ``write`` transactions of
    SQLite take the database lock up front), the placeholder, and :attr:`skip_locked`.
    """

    placeholder = "?"
    #: Appended to the candidate query of :meth:`lock_due`: PostgreSQL's `` FOR UPDATE SKIP LOCKED``.
    skip_locked = ""
    #: The null-safe equality operator (``IS`` in SQLite, ``IS NOT DISTINCT FROM`` in PostgreSQL).
    null_safe_equal = "IS"
    #: Whether :meth:`lock_due`'s one UPDATE runs without an explicit transaction (PostgreSQL:
    #: the statement and its SKIP LOCKED row locks are atomic; SQLite takes ``BEGIN IMMEDIATE``).
    lock_due_single = False
    schedules_table = "kaygraph_schedules"
    fires_table = "kaygraph_fires"

    def set_tables(self, prefix: str, qualifier: str = "") -> None:
        """Name the tables ``<qualifier><prefix>schedules`` and ``<qualifier><prefix>fires``."""
        self.schedules_table = f"{qualifier}{prefix}schedules"
        self.fires_table = f"{qualifier}{prefix}fires"

    def _transaction(self, write: bool = True, *, single: bool = False) -> AbstractContextManager[Any]:
        """A cursor; with ``write`` (and not ``single``) inside one transaction that commits at the end.

        ``single=True`` promises one statement, atomic by itself: it runs in autocommit mode (one
        round trip instead of BEGIN, statement, COMMIT).
        """
        raise NotImplementedError

    def _run(self, work: Callable[[Any], _T], *, write: bool = True, single: bool = False) -> _T:
        """``work(cursor)`` in one transaction (subclasses may retry it after a lost connection)."""
        with self._transaction(write, single=single) as cursor:
            return work(cursor)

    def schema_statements(self) -> list[str]:
        """CREATE statements for both tables and their indexes."""
        s, f = self.schedules_table, self.fires_table
        index = s.replace(".", "_")
        findex = f.replace(".", "_")
        return [
            f"CREATE TABLE IF NOT EXISTS {s} (name TEXT PRIMARY KEY, spec TEXT NOT NULL, "
            "paused INTEGER NOT NULL DEFAULT 0, next_fire_at DOUBLE PRECISION, wake_at DOUBLE PRECISION, "
            "lock_owner TEXT, lock_until DOUBLE PRECISION, poked INTEGER NOT NULL DEFAULT 0, "
            "missed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0)",
            # lock_due() and next_wake() read these in order instead of scanning every schedule.
            f"CREATE INDEX IF NOT EXISTS {index}_due ON {s} (({_DUE}))",
            f"CREATE INDEX IF NOT EXISTS {index}_lock ON {s} (lock_until)",
            f"CREATE TABLE IF NOT EXISTS {f} (fire_id TEXT PRIMARY KEY, schedule TEXT NOT NULL, "
            "fire_time DOUBLE PRECISION NOT NULL, due_at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, "
            "status TEXT NOT NULL, owner TEXT, lease_until DOUBLE PRECISION, attempts INTEGER NOT NULL, "
            "cancel_requested INTEGER NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
            "started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION, error TEXT, note TEXT)",
            f"CREATE INDEX IF NOT EXISTS {findex}_schedule ON {f} (schedule, fire_time)",
            f"CREATE INDEX IF NOT EXISTS {findex}_time ON {f} (fire_time)",
            f"CREATE INDEX IF NOT EXISTS {findex}_status ON {f} (schedule, status)",
        ]

    def _rows(self, cursor: Any) -> Iterator[dict[str, Any]]:
        names = [column[0] for column in cursor.description]
        for values in cursor.fetchall():
            yield dict(zip(names, values, strict=True))

    # -- schedules ----------------------------------------------------------------------------

    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> bool:
        row = schedule_row(schedule)
        p = self.placeholder
        columns = ", ".join(row)
        values = ", ".join([p] * len(row))
        if replace:
            updates = ", ".join(f"{name} = excluded.{name}" for name in row if name != "name")
            conflict = f"DO UPDATE SET {updates}"
        else:
            conflict = "DO NOTHING"
        sql = (
            f"INSERT INTO {self.schedules_table} ({columns}) VALUES ({values}) ON CONFLICT (name) {conflict}"
        )
        return self._run(
            lambda cursor: bool(cursor.execute(sql, tuple(row.values())).rowcount > 0), single=True
        )

    def get_schedule(self, name: str) -> Schedule | None:
        sql = f"SELECT {_SCHEDULE_COLUMNS} FROM {self.schedules_table} WHERE name = {self.placeholder}"

        def work(cursor: Any) -> Schedule | None:
            cursor.execute(sql, (name,))
            rows = list(self._rows(cursor))
            return schedule_from_row(rows[0]) if rows else None

        return self._run(work, write=False)

    def list_schedules(self) -> list[Schedule]:
        sql = f"SELECT {_SCHEDULE_COLUMNS} FROM {self.schedules_table} ORDER BY name"

        def work(cursor: Any) -> list[Schedule]:
            cursor.execute(sql)
            return [schedule_from_row(row) for row in self._rows(cursor)]

        return self._run(work, write=False)

    def _set(
        self,
        table: str,
        key: str,
        key_value: str,
        changes: Mapping[str, Any],
        extra: str = "",
        extra_args: tuple[Any, ...] = (),
    ) -> Callable[[Any], bool]:
        p = self.placeholder
        assignments = ", ".join(f"{name} = {p}" for name in changes)
        sql = f"UPDATE {table} SET {assignments} WHERE {key} = {p}{extra}"
        args = (*changes.values(), key_value, *extra_args)
        return lambda cursor: bool(cursor.execute(sql, args).rowcount > 0)

    def update_schedule(self, name: str, changes: Mapping[str, Any]) -> bool:
        values = check_changes(changes, Schedule.STATE_FIELDS, "schedule")
        if not values:
            return self.get_schedule(name) is not None
        return self._run(self._set(self.schedules_table, "name", name, values), single=True)

    def remove_schedule(self, name: str) -> bool:
        p = self.placeholder

        def work(cursor: Any) -> bool:
            cursor.execute(
                f"DELETE FROM {self.fires_table} WHERE schedule = {p} AND status = 'pending'", (name,)
            )
            return (
                cursor.execute(f"DELETE FROM {self.schedules_table} WHERE name = {p}", (name,)).rowcount > 0
            )

        return self._run(work)

    def lock_due(self, now: float, owner: str, until: float, limit: int) -> list[Schedule]:
        p, s = self.placeholder, self.schedules_table
        sql = (
            f"UPDATE {s} SET lock_owner = {p}, lock_until = {p}, poked = 0 WHERE name IN ("
            f"SELECT name FROM {s} WHERE {_DUE} <= {p} AND (lock_owner IS NULL OR lock_until < {p}) "
            f"ORDER BY {_DUE} LIMIT {int(limit)}{self.skip_locked}"
            f") RETURNING {_SCHEDULE_COLUMNS}"
        )

        def work(cursor: Any) -> list[Schedule]:
            cursor.execute(sql, (owner, until, now, now))
            return [schedule_from_row(row) for row in self._rows(cursor)]

        return self._run(work, single=self.lock_due_single)

    def _unlock_work(self, name: str, owner: str, changes: Mapping[str, Any]) -> Callable[[Any], bool]:
        values = check_changes(changes, Schedule.STATE_FIELDS, "schedule")
        values.update(lock_owner=None, lock_until=None)
        return self._set(
            self.schedules_table, "name", name, values, f" AND lock_owner = {self.placeholder}", (owner,)
        )

    def unlock(self, name: str, owner: str, changes: Mapping[str, Any]) -> bool:
        return self._run(self._unlock_work(name, owner, changes), single=True)

    def write_pass(self, owner: str, writes: Sequence[PassWrite]) -> list[list[bool]]:
        # One transaction for the whole batch: all of it is written, or (an error) none of it.
        steps = [
            (
                self._insert_work(write.new_fires),
                [self._update_fire_work(fire, changes, who) for fire, changes, who in write.updates],
                self._unlock_work(write.schedule, owner, write.changes),
            )
            for write in writes
        ]

        def work(cursor: Any) -> list[list[bool]]:
            results = []
            for insert, updates, unlock in steps:
                insert(cursor)
                results.append([update(cursor) for update in updates])
                unlock(cursor)
            return results

        return self._run(work) if writes else []

    def poke(self, name: str) -> None:
        self._run(self._set(self.schedules_table, "name", name, {"poked": 1}), single=True)

    def next_wake(self) -> float | None:
        # The same key as wake_key(): the earliest due unlocked schedule (first in the due index;
        # the COALESCE keeps planners off the lock index, which would mean sorting every unlocked
        # row), and the locked ones (a few: one batch per scheduler), due when their lock expires.
        s = self.schedules_table
        sql = (
            f"SELECT (SELECT {_DUE} FROM {s} WHERE {_DUE} IS NOT NULL AND COALESCE(lock_until, -1) = -1 "
            f"ORDER BY {_DUE} LIMIT 1), (SELECT MIN(CASE WHEN poked = 1 OR wake_at IS NULL "
            f"OR lock_until > wake_at THEN lock_until ELSE wake_at END) "
            f"FROM {s} WHERE lock_until IS NOT NULL)"
        )

        def work(cursor: Any) -> float | None:
            cursor.execute(sql)
            found = [float(value) for value in cursor.fetchone() or () if value is not None]
            return min(found) if found else None

        return self._run(work, write=False)

    # -- fires --------------------------------------------------------------------------------

    def _insert_work(self, fires: Sequence[Fire]) -> Callable[[Any], int]:
        p = self.placeholder
        sql = (
            f"INSERT INTO {self.fires_table} ({_FIRE_COLUMNS}) VALUES ({', '.join([p] * len(Fire.FIELDS))}) "
            "ON CONFLICT (fire_id) DO NOTHING"
        )

        def work(cursor: Any) -> int:
            inserted = 0
            for fire in fires:
                inserted += max(cursor.execute(sql, tuple(fire_row(fire).values())).rowcount, 0)
            return inserted

        return work

    def put_fires(self, fires: Sequence[Fire]) -> int:
        if not fires:
            return 0
        return self._run(self._insert_work(fires), single=len(fires) == 1)

    def _select_fires(
        self, where: str, args: tuple[Any, ...], order: str, limit: int | None = None
    ) -> list[Fire]:
        sql = f"SELECT {_FIRE_COLUMNS} FROM {self.fires_table}{where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def work(cursor: Any) -> list[Fire]:
            cursor.execute(sql, args)
            return [fire_from_row(row) for row in self._rows(cursor)]

        return self._run(work, write=False)

    def get_fire(self, fire_id: str) -> Fire | None:
        found = self._select_fires(f" WHERE fire_id = {self.placeholder}", (fire_id,), "fire_id")
        return found[0] if found else None

    def active_fires_of(self, schedules: Sequence[str]) -> dict[str, list[Fire]]:
        found: dict[str, list[Fire]] = {name: [] for name in schedules}
        if not found:
            return found
        names = ", ".join([self.placeholder] * len(found))
        where = f" WHERE schedule IN ({names}) AND status IN ('pending', 'running')"
        for fire in self._select_fires(where, tuple(found), "fire_time, fire_id"):
            found[fire.schedule].append(fire)
        return found

    def active_fires(self, schedule: str) -> list[Fire]:
        p = self.placeholder
        return self._select_fires(
            f" WHERE schedule = {p} AND status IN ('pending', 'running')", (schedule,), "fire_time, fire_id"
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
        p = self.placeholder
        clauses, args = [], []
        for clause, value in (
            (f"schedule = {p}", schedule),
            (f"status = {p}", status),
            (f"fire_time >= {p}", since),
            (f"fire_time < {p}", until),
        ):
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select_fires(where, tuple(args), "fire_time DESC, fire_id DESC", limit)

    def _update_fire_work(
        self, fire_id: str, changes: Mapping[str, Any], if_owner: Any
    ) -> Callable[[Any], bool]:
        values = check_changes(changes, Fire.FIELDS, "fire")
        if not values:
            sql = f"SELECT 1 FROM {self.fires_table} WHERE fire_id = {self.placeholder}"
            return lambda cursor: cursor.execute(sql, (fire_id,)).fetchone() is not None
        if if_owner is ANY_OWNER:
            return self._set(self.fires_table, "fire_id", fire_id, values)
        check = f" AND owner {self.null_safe_equal} {self.placeholder}"
        return self._set(self.fires_table, "fire_id", fire_id, values, check, (if_owner,))

    def update_fire(self, fire_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        return self._run(self._update_fire_work(fire_id, changes, if_owner), single=True)

    def renew_fires(self, fire_ids: Sequence[str], owner: str, until: float) -> list[str]:
        if not fire_ids:
            return []
        p, f = self.placeholder, self.fires_table
        ids = ", ".join([p] * len(fire_ids))

        def work(cursor: Any) -> list[str]:
            cursor.execute(
                f"UPDATE {f} SET lease_until = {p} "
                f"WHERE owner = {p} AND status = 'running' AND fire_id IN ({ids})",
                (until, owner, *fire_ids),
            )
            cursor.execute(
                f"SELECT fire_id FROM {f} WHERE owner = {p} AND cancel_requested = 1 AND fire_id IN ({ids})",
                (owner, *fire_ids),
            )
            return [row[0] for row in cursor.fetchall()]

        return self._run(work)


__all__ = [
    "SQLScheduleStore",
    "check_changes",
    "fire_from_row",
    "fire_row",
    "missing_extra",
    "redact_url",
    "schedule_from_row",
    "schedule_row",
    "unreachable",
    "wake_key",
]
