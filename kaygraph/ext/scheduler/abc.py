"""The scheduler's records (:class:`Schedule`, :class:`Fire`) and its one interface, :class:`ScheduleStore`.

A store keeps schedules and their fires and offers a handful of *atomic* operations; all policy
(catch-up, overlap, jitter, recovery of crashed fires) is written once in
:mod:`kaygraph.ext.scheduler.engine` on top of them, so every backend behaves the same.

Exactly-once rests on three guarantees every store gives:

* :meth:`ScheduleStore.lock_due` hands a schedule to one scheduler at a time (a lease: a crashed
  holder's lock expires). Only the holder creates fires for it, so replicas never disagree.
* :meth:`ScheduleStore.put_fires` inserts a fire only if its id, ``"<schedule>@<UTC fire time>"``,
  is new: a fire created twice (a restart, an expired lock) is still one fire.
* :meth:`ScheduleStore.update_fire` with ``if_owner`` is a compare-and-set on the fire's owner: the
  claim that lets exactly one scheduler run a fire (and take over one whose owner died).
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

#: Sentinel for ``if_owner``: change the fire whoever owns it.
ANY_OWNER: Any = object()

#: What a fire can be: ``pending`` (waiting for its time or a free worker), ``running``,
#: ``succeeded``, ``failed`` (the error is recorded), ``cancelled`` (``overlap="cancel"`` or a
#: shutdown; its durable run is resumable), ``skipped`` (``overlap="skip"`` while another ran).
FIRE_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "skipped")
ACTIVE_STATUSES = ("pending", "running")
OVERLAP_POLICIES = ("skip", "queue", "allow", "cancel")
CATCHUP_POLICIES = ("latest", "all", "skip")


def fire_id(schedule: str, fire_time: float) -> str:
    """The id of the fire of ``schedule`` at ``fire_time``; also its durable run id.

    >>> fire_id("nightly", 1774747800.0)
    'nightly@2026-03-29T01:30:00Z'
    """
    when = _dt.datetime.fromtimestamp(fire_time, _dt.timezone.utc)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}"
    return f"{schedule}@{text}Z"


@dataclasses.dataclass
class Schedule:
    """One schedule: which graph runs, when, with what input and under which policies."""

    name: str
    #: ``"package.module:attr"``, loaded with :func:`kaygraph.load_graph` at every fire.
    graph_ref: str
    #: The trigger as :meth:`Trigger.to_dict` (``{"type": "cron", "expression": ..., ...}``).
    trigger: dict[str, Any]
    #: The shared store each fire starts from (JSON values; copied per fire).
    shared: dict[str, Any] | None = None
    #: Graph params for each fire (JSON values).
    params: dict[str, Any] | None = None
    overlap: str = "skip"
    catchup: str = "latest"
    #: Missed fires older than this many seconds never run, whatever ``catchup`` says.
    max_age: float | None = None
    #: Each fire starts up to this many seconds late, by a fixed amount per (schedule, fire).
    jitter: float = 0.0
    created_at: float = 0.0
    paused: bool = False
    #: The next fire time not yet turned into a :class:`Fire`.
    next_fire_at: float | None = None
    #: When a scheduler next has something to do for this schedule.
    wake_at: float | None = None
    lock_owner: str | None = None
    lock_until: float | None = None
    #: Something changed (a fire ended, a manual trigger): look at the schedule again soon.
    poked: bool = False
    #: Fires not run because the scheduler was down (catch-up policy / ``max_age``), in total.
    missed: int = 0
    #: Fires not run because the previous one was still going (``overlap="skip"``), in total.
    skipped: int = 0

    #: Fields fixed when the schedule is added (stored together as one JSON document).
    SPEC_FIELDS: ClassVar[tuple[str, ...]] = (
        "graph_ref",
        "trigger",
        "shared",
        "params",
        "overlap",
        "catchup",
        "max_age",
        "jitter",
        "created_at",
    )
    #: Fields the scheduler changes as it goes (stored as columns).
    STATE_FIELDS: ClassVar[tuple[str, ...]] = (
        "paused",
        "next_fire_at",
        "wake_at",
        "lock_owner",
        "lock_until",
        "poked",
        "missed",
        "skipped",
    )

    def spec(self) -> dict[str, Any]:
        """The fixed fields, as the JSON document stores keep."""
        return {name: getattr(self, name) for name in self.SPEC_FIELDS}


@dataclasses.dataclass
class Fire:
    """One fire of a schedule: a (schedule, fire time) pair, run at most once as durable run ``fire_id``."""

    fire_id: str
    schedule: str
    #: The scheduled instant (Unix seconds).
    fire_time: float
    #: When it may start: ``fire_time`` plus the schedule's jitter for this fire.
    due_at: float
    #: ``scheduled``, ``manual`` (:meth:`Scheduler.trigger`) or ``backfill``.
    kind: str = "scheduled"
    status: str = "pending"
    owner: str | None = None
    lease_until: float | None = None
    #: How many times a scheduler started it (more than 1: it was resumed after a crash).
    attempts: int = 0
    cancel_requested: bool = False
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    #: The error of a failed fire (``ImportError: ...``), or why it was skipped or cancelled.
    error: str | None = None
    #: Extra information, e.g. ``"caught up 9 missed fires"``.
    note: str | None = None

    FIELDS: ClassVar[tuple[str, ...]] = (
        "fire_id",
        "schedule",
        "fire_time",
        "due_at",
        "kind",
        "status",
        "owner",
        "lease_until",
        "attempts",
        "cancel_requested",
        "created_at",
        "started_at",
        "ended_at",
        "error",
        "note",
    )

    @property
    def run_id(self) -> str:
        """The durable run of this fire (the same string as :attr:`fire_id`)."""
        return self.fire_id


@dataclasses.dataclass
class PassWrite:
    """What one scheduler pass decided for one schedule it locked, for :meth:`ScheduleStore.write_pass`."""

    schedule: str
    #: Fires to insert (only new ids, as :meth:`ScheduleStore.put_fires`).
    new_fires: list[Fire] = dataclasses.field(default_factory=list)
    #: ``(fire_id, changes, if_owner)`` applied in order, as :meth:`ScheduleStore.update_fire`
    #: (``if_owner`` may be :data:`ANY_OWNER`); the claims are compare-and-sets among them.
    updates: list[tuple[str, dict[str, Any], Any]] = dataclasses.field(default_factory=list)
    #: Schedule state set as the lock is released, as :meth:`ScheduleStore.unlock`.
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)


class ScheduleStore(abc.ABC):
    """Where schedules and fires live; shared by every scheduler process that uses the same URL.

    Implementations: ``MemoryScheduleStore`` (one process), ``SQLiteScheduleStore`` (default; one
    file, many processes), ``PostgresScheduleStore``, ``RedisScheduleStore``. Thread-safe.
    """

    backend: ClassVar[str] = ""

    # -- schedules ----------------------------------------------------------------------------

    @abc.abstractmethod
    def add_schedule(self, schedule: Schedule, *, replace: bool = False) -> bool:
        """Store ``schedule``; False (nothing changed) if the name exists and ``replace`` is False."""

    @abc.abstractmethod
    def get_schedule(self, name: str) -> Schedule | None:
        """The schedule ``name``, or None."""

    @abc.abstractmethod
    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""

    @abc.abstractmethod
    def update_schedule(self, name: str, changes: Mapping[str, Any]) -> bool:
        """Set :attr:`Schedule.STATE_FIELDS` in ``changes``; True if the schedule exists."""

    @abc.abstractmethod
    def remove_schedule(self, name: str) -> bool:
        """Delete the schedule and its pending fires (finished and running fires stay as history)."""

    @abc.abstractmethod
    def lock_due(self, now: float, owner: str, until: float, limit: int) -> list[Schedule]:
        """Atomically lock up to ``limit`` schedules that need a scheduler, and return them.

        Due means ``wake_at <= now`` or ``poked``; a schedule locked by someone else is taken only
        once its ``lock_until`` has passed. Locking sets ``lock_owner=owner``, ``lock_until=until``
        and clears ``poked``. Concurrent callers never get the same schedule (``SKIP LOCKED``,
        ``BEGIN IMMEDIATE``, a Lua script).
        """

    @abc.abstractmethod
    def unlock(self, name: str, owner: str, changes: Mapping[str, Any]) -> bool:
        """Apply ``changes`` and release the lock, only while ``owner`` holds it; True if it did.

        If the schedule was poked while locked, it stays due (``wake_at`` is not raised past now).
        """

    @abc.abstractmethod
    def poke(self, name: str) -> None:
        """Mark the schedule due now (a fire ended, a fire was added by hand)."""

    @abc.abstractmethod
    def next_wake(self) -> float | None:
        """The earliest moment any schedule is due (a locked one: when its lock expires), or None."""

    def write_pass(self, owner: str, writes: Sequence[PassWrite]) -> list[list[bool]]:
        """Apply what a pass decided for the schedules ``owner`` locked: for each write its new
        fires, its fire updates in order, then its unlock. Returns, per write, whether each update
        changed the fire (a claim that lost its compare-and-set says False).

        The SQL stores do it all in one transaction (one round trip per batch of schedules, not
        four per schedule); this default makes the same calls one by one, each atomic by itself,
        which is what the other stores need: a failure part-way leaves claimed fires that
        nobody runs, taken over when their lease ends, as after a crash.
        """
        results: list[list[bool]] = []
        for write in writes:
            self.put_fires(write.new_fires)
            results.append(
                [self.update_fire(fire, changes, if_owner=who) for fire, changes, who in write.updates]
            )
            self.unlock(write.schedule, owner, write.changes)
        return results

    # -- fires --------------------------------------------------------------------------------

    def active_fires_of(self, schedules: Sequence[str]) -> dict[str, list[Fire]]:
        """:meth:`active_fires` of several schedules at once (one query on the SQL stores)."""
        return {name: self.active_fires(name) for name in schedules}

    @abc.abstractmethod
    def put_fires(self, fires: Sequence[Fire]) -> int:
        """Insert the fires whose id is new (others are left as they are); returns how many."""

    @abc.abstractmethod
    def get_fire(self, fire_id: str) -> Fire | None:
        """The fire ``fire_id``, or None."""

    @abc.abstractmethod
    def active_fires(self, schedule: str) -> list[Fire]:
        """The ``pending`` and ``running`` fires of ``schedule``, by fire time."""

    @abc.abstractmethod
    def list_fires(
        self,
        *,
        schedule: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[Fire]:
        """Fires matching every filter given, newest fire time first (``since`` inclusive,
        ``until`` exclusive), at most ``limit``."""

    @abc.abstractmethod
    def update_fire(self, fire_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        """Set :class:`Fire` fields; with ``if_owner`` only while the fire's owner equals it (the
        claim's compare-and-set). True if the fire exists and was changed."""

    @abc.abstractmethod
    def renew_fires(self, fire_ids: Sequence[str], owner: str, until: float) -> list[str]:
        """Extend the lease of the running fires ``owner`` holds to ``until``; returns the ids of
        those whose cancellation was requested (``overlap="cancel"``)."""

    def close(self) -> None:  # noqa: B027 - optional: nothing to release without connections
        """Release connections; the store is unusable afterwards."""

    def describe(self) -> str:
        """Where the data lives, for messages and ``kaygraph info`` (never a password)."""
        return self.backend

    def __enter__(self) -> ScheduleStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "ACTIVE_STATUSES",
    "ANY_OWNER",
    "CATCHUP_POLICIES",
    "FIRE_STATUSES",
    "OVERLAP_POLICIES",
    "Fire",
    "PassWrite",
    "Schedule",
    "ScheduleStore",
    "fire_id",
]
