"""The scheduler's decisions, free of I/O: which fires a locked schedule gets, which may start now.

:func:`plan` looks at one schedule (locked by this scheduler), its trigger, its pending and running
fires and the time, and answers with the fires to create, the fires to try to claim, the running
fires to cancel and the schedule's new state. The store calls around it live in
:mod:`kaygraph.ext.scheduler.scheduler`; keeping the policies here makes them testable with plain
values and identical on every backend and in the sync and async drivers.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
from typing import Any

from .abc import Fire, Schedule, fire_id
from .triggers import Trigger

_ISO = "%Y-%m-%d %H:%M:%SZ"


def jitter_for(schedule: str, fire_time: float, jitter: float) -> float:
    """The delay in ``[0, jitter)`` of this fire: the same on every replica and every restart."""
    if not jitter:
        return 0.0
    # float(): a store may hand 1800000060.0 back as the int 1800000060 (SQLite does).
    digest = hashlib.blake2b(f"{schedule}@{float(fire_time)!r}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * jitter


def _iso(timestamp: float) -> str:
    return _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime(_ISO)


@dataclasses.dataclass
class Plan:
    """What to do for one schedule in one pass."""

    #: Fires to insert (``pending``, or ``skipped`` when the previous fire is still going).
    new_fires: list[Fire] = dataclasses.field(default_factory=list)
    #: Fires to claim, in order (a claim can still fail: another scheduler got there first).
    claimable: list[Fire] = dataclasses.field(default_factory=list)
    #: Running fires whose cancellation to request (``overlap="cancel"``).
    cancel: list[Fire] = dataclasses.field(default_factory=list)
    #: Older fires superseded by a newer one (``overlap="cancel"``): pending ones are marked
    #: ``skipped``, orphaned running ones ``cancelled``.
    superseded: list[Fire] = dataclasses.field(default_factory=list)
    #: Changes to the schedule row (``next_fire_at``, ``missed``, ``skipped``, ``wake_at``).
    changes: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: Fires dropped by the catch-up policy or ``max_age`` in this pass.
    missed: int = 0
    #: Fires recorded as skipped by the overlap policy in this pass.
    skipped: int = 0


def plan(
    schedule: Schedule,
    trigger: Trigger,
    active: list[Fire],
    now: float,
    *,
    grace: float,
    capacity: int,
    lease_until: float,
) -> Plan:
    """Decide one pass for ``schedule`` (see the module documentation).

    ``active`` are its pending and running fires; ``grace`` is how late a fire may be and still
    count as on time (later ones follow ``catchup``); ``capacity`` is how many fires this
    scheduler can start now; ``lease_until`` is when claims made now expire.
    """
    result = Plan()
    name = schedule.name
    live = [f for f in active if f.status == "running" and f.lease_until is not None and f.lease_until >= now]
    # A running fire whose lease ran out lost its scheduler (killed, or cut off): run it again,
    # which resumes its durable run after the last checkpointed node.
    orphans = [f for f in active if f.status == "running" and f not in live]
    pending = [f for f in active if f.status == "pending"]
    busy = bool(active)

    next_at = schedule.next_fire_at
    if not schedule.paused and next_at is not None:
        due: list[float] = []
        while next_at is not None and next_at + jitter_for(name, next_at, schedule.jitter) <= now:
            due.append(next_at)
            next_at = trigger.next_after(next_at)
        result.changes["next_fire_at"] = next_at
        fresh = _catch_up(schedule, due, now, grace, result)
        for index, (when, note) in enumerate(fresh):
            fire = Fire(
                fire_id=fire_id(name, when),
                schedule=name,
                fire_time=when,
                due_at=when + jitter_for(name, when, schedule.jitter),
                created_at=now,
                note=note,
            )
            # Overlap is judged against what was already going; fires created together (a
            # catch-up of several) are one decision, taken by `catchup`.
            if index == 0 and busy and schedule.overlap == "skip":
                running = (live or orphans or pending)[0]
                fire.status = "skipped"
                fire.error = f"skipped: the previous fire {running.fire_id} was still {running.status}"
                fire.ended_at = now
                result.skipped += 1
            elif schedule.overlap == "cancel" and index == 0:
                result.cancel = list(live)
            result.new_fires.append(fire)
        if result.skipped and len(result.new_fires) > 1:
            for fire in result.new_fires[1:]:  # the rest of the batch goes with the first
                fire.status, fire.error, fire.ended_at = "skipped", result.new_fires[0].error, now
                result.skipped += 1

    candidates = sorted(
        orphans + pending + [f for f in result.new_fires if f.status == "pending"],
        key=lambda f: (f.fire_time, f.fire_id),
    )
    ready = [f for f in candidates if f.due_at <= now]
    if schedule.overlap == "allow":
        chosen = ready
    elif schedule.overlap == "cancel":
        chosen = ready[-1:]
        result.superseded = [f for f in ready[:-1] if f not in result.new_fires]
        for fire in ready[:-1]:
            if fire in result.new_fires:
                fire.status, fire.ended_at = "skipped", now
                fire.error = f"skipped: superseded by {chosen[0].fire_id}"
                result.skipped += 1
    else:  # skip and queue: one at a time, oldest first
        chosen = [] if live else ready[:1]
    result.claimable = chosen[: max(capacity, 0)]

    # When this schedule next needs a scheduler.
    wakes: list[float] = []
    if not schedule.paused and next_at is not None:
        wakes.append(next_at + jitter_for(name, next_at, schedule.jitter))
    claimed_ids = {f.fire_id for f in result.claimable}
    superseded_ids = {f.fire_id for f in result.superseded}
    for fire in candidates:
        if fire.fire_id in claimed_ids or fire.fire_id in superseded_ids:
            continue
        if fire.due_at > now:
            wakes.append(fire.due_at)
        elif not live or schedule.overlap == "allow":
            wakes.append(
                now + 0.2
            )  # ready but no free worker here: look again soon (or another replica will)
    # A running fire whose scheduler dies must be noticed when its lease runs out.
    wakes += [f.lease_until for f in live if f.lease_until is not None]
    if result.claimable:
        wakes.append(lease_until)
    result.changes["wake_at"] = min(wakes) if wakes else None
    if result.missed:
        result.changes["missed"] = schedule.missed + result.missed
    if result.skipped:
        result.changes["skipped"] = schedule.skipped + result.skipped
    return result


def _catch_up(
    schedule: Schedule, due: list[float], now: float, grace: float, result: Plan
) -> list[tuple[float, str | None]]:
    """The due fire times that run, each with a note; the others are counted in ``result.missed``."""
    on_time = [when for when in due if now - when - jitter_for(schedule.name, when, schedule.jitter) <= grace]
    late = [when for when in due if when not in on_time]
    if schedule.max_age is not None:
        too_old = [when for when in late if now - when > schedule.max_age]
        result.missed += len(too_old)
        late = [when for when in late if when not in too_old]
    if schedule.catchup == "all":
        kept = late
    elif schedule.catchup == "latest" and late:
        kept = late[-1:]
    else:
        kept = []
    result.missed += len(late) - len(kept)
    notes: dict[float, str | None] = {when: None for when in kept + on_time}
    if late:
        how = {"all": "every", "latest": "one run for the", "skip": "none of the"}[schedule.catchup]
        note = (
            f"late after downtime: {len(late)} fire(s) since {_iso(late[0])} were missed; "
            f"catchup={schedule.catchup!r} ran {how} missed fire(s)"
        )
        target = kept[-1] if kept else None
        if target is not None:
            notes[target] = note
    return sorted(notes.items())


__all__ = ["Plan", "jitter_for", "plan"]
