"""The :class:`Scheduler`: schedules graphs, and runs their fires as durable runs, exactly once.

One engine (:meth:`Scheduler.tick` decides, :meth:`Scheduler.execute` runs one fire) and two thin
drivers: :meth:`Scheduler.run` (threads, blocking, Ctrl-C / SIGTERM stop it cleanly) and
:meth:`Scheduler.run_async` (asyncio tasks). Several processes on one store share the work.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from queue import SimpleQueue
from typing import Any

from kaygraph.core.cancel import CancelToken
from kaygraph.core.exceptions import ConfigurationError, KayGraphError, RunCancelled, RunLockedError
from kaygraph.core.loading import load_graph

from . import engine
from .abc import (
    ANY_OWNER,
    CATCHUP_POLICIES,
    OVERLAP_POLICIES,
    Fire,
    PassWrite,
    Schedule,
    ScheduleStore,
    fire_id,
)
from .errors import InvalidTriggerError, ScheduleExistsError, ScheduleNotFoundError, SchedulerError
from .observe import FireObserver
from .stores import configured_url, open_schedule_store, runs_url_for, setting
from .triggers import Trigger, trigger_from_dict

logger = logging.getLogger("kaygraph.scheduler")
_BATCH = 200  # schedules locked per store round trip


def _number(name: str, value: Any, *, allow_zero: bool = False, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value < 0 if allow_zero else value <= 0)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be a number {bound}, got {value!r}", key=name, value=value)
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigurationError(
            f"{name}={value!r} is not a policy; use one of {', '.join(map(repr, choices))}",
            key=name,
            value=value,
        )
    return str(value)


def _json_copy(name: str, value: Any, what: str) -> Any:
    """``value`` as plain JSON values (how it is stored); a clear error for anything else."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SchedulerError(
            f"schedule {name!r}: {what} must be a dict, got {type(value).__name__}", schedule=name
        )
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise SchedulerError(
            f"schedule {name!r}: {what} must hold JSON values (it is stored and copied for every "
            f"fire): {exc}",
            schedule=name,
        ) from exc


def _timestamp(value: _dt.datetime | float, what: str) -> float:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise SchedulerError(f"{what} must be a timezone-aware datetime, got {value.isoformat()!r}")
        return value.timestamp()
    return float(value)


class _Job:
    """One claimed fire this process runs: the fire, its schedule and its cancel token."""

    def __init__(self, fire: Fire, schedule: Schedule) -> None:
        self.fire = fire
        self.schedule = schedule
        self.token = CancelToken()
        self.shutdown = False  # cancelled by a shutdown: hand the fire back instead of ending it


class Scheduler:
    """Runs graphs on :func:`cron` / :func:`every` schedules as durable runs, exactly once per fire.

    ``store`` (a URL or :class:`ScheduleStore`; default ``scheduler.*`` config, a SQLite file)
    holds schedules and fires; every scheduler process on the same store shares them. Each fire is
    the durable run ``"<name>@<UTC fire time>"`` in ``runs`` (default: the same database), so a fire
    claimed twice is one run and a crashed fire resumes after its last completed node.

    ``lease`` seconds: a killed scheduler's fires are taken over after this. ``grace`` seconds: how
    late a fire may start and still count as on time (later ones follow the schedule's
    ``catchup``). ``clock`` returns the time (tests pass a fake one).
    """

    def __init__(
        self,
        store: str | ScheduleStore | None = None,
        *,
        runs: Any = None,
        lease: float | None = None,
        grace: float | None = None,
        poll_interval: float | None = None,
        max_workers: int | None = None,
        shutdown_timeout: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.lease = float(_number("scheduler.lease", setting("lease") if lease is None else lease))
        self.grace = float(
            _number("scheduler.grace", setting("grace") if grace is None else grace, allow_zero=True)
        )
        self.poll_interval = float(
            _number(
                "scheduler.poll_interval",
                setting("poll_interval") if poll_interval is None else poll_interval,
            )
        )
        workers = setting("max_workers") if max_workers is None else max_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigurationError(
                f"scheduler.max_workers must be an int >= 1, got {workers!r}", key="max_workers"
            )
        self.max_workers = workers
        self.shutdown_timeout = float(
            _number(
                "scheduler.shutdown_timeout",
                setting("shutdown_timeout") if shutdown_timeout is None else shutdown_timeout,
                allow_zero=True,
            )
        )
        self.clock = clock or time.time
        url = store if isinstance(store, str) else (configured_url() if store is None else None)
        self.store = open_schedule_store(store if store is not None else url)
        self._owns_store = not isinstance(store, ScheduleStore)
        self._runs_target = runs if runs is not None else (runs_url_for(url) if url else None)
        self._runs_store: Any = None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._jobs: dict[str, _Job] = {}
        self._jobs_lock = threading.Lock()
        self._jobs_done = threading.Condition(self._jobs_lock)  # notified as each fire ends
        self._wake = threading.Event()
        self._notify: Callable[[], None] = self._wake.set
        self._stopping = threading.Event()
        self._next_renew = 0.0
        #: Schedules whose fires ended here and that need a pass (a queued fire may wait for it;
        #: their wake time drops the ended fire's lease); poked by tick() after the due fires.
        self._ended: dict[str, None] = {}
        self._ended_since = 0.0
        self.observer = FireObserver(clock=self.clock)
        self._triggers: dict[str, Trigger] = {}
        self._schedule_triggers: dict[str, tuple[dict[str, Any], Trigger]] = {}

    # -- managing schedules ------------------------------------------------------------------

    def add(
        self,
        name: str,
        graph_ref: str,
        trigger: Trigger,
        *,
        shared: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        overlap: str = "skip",
        catchup: str = "latest",
        max_age: float | None = None,
        jitter: float = 0.0,
        paused: bool = False,
        replace: bool = False,
    ) -> Schedule:
        """Store a schedule: ``graph_ref`` (``"package.module:attr"``) runs on ``trigger``.

        The reference is loaded now, so a typo fails here rather than at 3 a.m. ``overlap``: what a
        fire does while the previous one still runs (``skip``, ``queue``, ``allow``, ``cancel``).
        ``catchup``: what missed fires do after downtime (``latest``: one run, ``all``, ``skip``);
        missed fires older than ``max_age`` seconds never run. ``jitter``: each fire starts up to
        that many seconds late, by an amount fixed per (schedule, fire).
        """
        if not isinstance(name, str) or not name or "@" in name or name != name.strip():
            raise SchedulerError(
                f"a schedule name must be a non-empty string without '@' or edge spaces, got {name!r}"
            )
        if not isinstance(trigger, Trigger):
            raise InvalidTriggerError(
                f"schedule {name!r}: trigger must be cron(...) or every(...), got {trigger!r}",
                field="trigger",
                value=trigger,
            )
        _choice("overlap", overlap, OVERLAP_POLICIES)
        _choice("catchup", catchup, CATCHUP_POLICIES)
        _number("max_age", max_age, allow_none=True)
        _number("jitter", jitter, allow_zero=True)
        self.check_graph_ref(graph_ref, schedule=name)
        now = self.clock()
        first = trigger.next_after(now)
        schedule = Schedule(
            name=name,
            graph_ref=graph_ref,
            trigger=trigger.to_dict(),
            shared=_json_copy(name, shared, "shared"),
            params=_json_copy(name, params, "params"),
            overlap=overlap,
            catchup=catchup,
            max_age=max_age,
            jitter=float(jitter),
            created_at=now,
            paused=paused,
            next_fire_at=first,
            wake_at=None if first is None or paused else first + engine.jitter_for(name, first, jitter),
        )
        if not self.store.add_schedule(schedule, replace=replace):
            raise ScheduleExistsError(
                f"a schedule named {name!r} already exists in {self.store.describe()}; remove it first "
                "or pass replace=True (kaygraph schedules add --replace)",
                schedule=name,
            )
        self._notify()
        return schedule

    @staticmethod
    def check_graph_ref(graph_ref: str, *, schedule: str | None = None) -> None:
        """Load ``graph_ref`` once; :class:`SchedulerError` saying why if it does not give a graph."""
        if not isinstance(graph_ref, str) or ":" not in graph_ref:
            raise SchedulerError(
                f"schedule {schedule!r}: graph_ref must be 'package.module:attr', got {graph_ref!r}",
                schedule=schedule,
            )
        from kaygraph.core.exceptions import GraphReferenceError

        try:
            load_graph(graph_ref)
        except GraphReferenceError as exc:  # already names the module or attribute and the fix
            raise SchedulerError(f"schedule {schedule!r}: {exc}", schedule=schedule) from exc
        except Exception as exc:  # the module itself raised while importing
            raise SchedulerError(
                f"schedule {schedule!r}: graph reference {graph_ref!r} does not load: "
                f"{type(exc).__name__}: {exc}",
                schedule=schedule,
            ) from exc

    def get(self, name: str) -> Schedule:
        """The schedule ``name``; :class:`ScheduleNotFoundError` (with the known names) if absent."""
        schedule = self.store.get_schedule(name)
        if schedule is None:
            known = [s.name for s in self.store.list_schedules()]
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ScheduleNotFoundError(
                f"no schedule named {name!r} in {self.store.describe()}.{hint} "
                f"Known: {', '.join(known) if known else 'none'}",
                schedule=name,
            )
        return schedule

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        return self.store.list_schedules()

    def remove(self, name: str) -> None:
        """Delete the schedule and its pending fires; a fire running now finishes (its history stays)."""
        self.get(name)
        self.store.remove_schedule(name)
        self._notify()

    def pause(self, name: str) -> None:
        """Stop creating fires for ``name`` (running and already pending fires go on)."""
        self.get(name)
        self.store.update_schedule(name, {"paused": True})
        self.store.poke(name)
        self._notify()

    def resume(self, name: str) -> None:
        """Fire ``name`` again, from its next fire time after now (the paused period is not caught up)."""
        schedule = self.get(name)
        trigger = trigger_from_dict(schedule.trigger)
        first = trigger.next_after(self.clock())
        self.store.update_schedule(name, {"paused": False, "next_fire_at": first})
        self.store.poke(name)
        self._notify()

    def trigger(self, name: str) -> Fire:
        """Run ``name`` now, once, besides its schedule (a ``manual`` fire; overlap rules apply)."""
        self.get(name)
        now = self.clock()
        fire = Fire(fire_id(name, now), name, now, now, kind="manual", created_at=now)
        self.store.put_fires([fire])
        self.store.poke(name)
        self._notify()
        return fire

    def backfill(
        self, name: str, start: _dt.datetime | float, end: _dt.datetime | float
    ) -> builtins.list[Fire]:
        """Create the fires of ``name`` for every fire time in ``[start, end)``; ones that exist already
        (ran, or were skipped) are left alone, so a backfill can be repeated safely."""
        schedule = self.get(name)
        trigger = trigger_from_dict(schedule.trigger)
        begin, finish = _timestamp(start, "start"), _timestamp(end, "end")
        now = self.clock()
        fires: builtins.list[Fire] = []
        when = trigger.next_after(begin - 1e-6)
        while when is not None and when < finish:
            fires.append(Fire(fire_id(name, when), name, when, when, kind="backfill", created_at=now))
            when = trigger.next_after(when)
        inserted = self.store.put_fires(fires)
        self.store.poke(name)
        self._notify()
        logger.info("backfill of %r: %d fire(s), %d new", name, len(fires), inserted)
        return fires

    def next_fires(self, name: str, n: int = 10) -> builtins.list[_dt.datetime]:
        """The next ``n`` fire times of ``name`` (aware datetimes in the trigger's timezone)."""
        return [when for when, _ in self.next_fires_explained(name, n)]

    def next_fires_explained(self, name: str, n: int = 10) -> builtins.list[tuple[_dt.datetime, str]]:
        """:meth:`next_fires` with a DST note for each fire ("" when none applies)."""
        schedule = self.get(name)
        trigger = trigger_from_dict(schedule.trigger)
        after = _dt.datetime.fromtimestamp(self.clock(), _dt.timezone.utc)
        return trigger.next_fires_explained(after, n)

    def fires(
        self, name: str | None = None, *, status: str | None = None, limit: int | None = 50
    ) -> builtins.list[Fire]:
        """Recent fires (of ``name``, or of all schedules), newest first."""
        return self.store.list_fires(schedule=name, status=status, limit=limit)

    # -- the engine ----------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> builtins.list[_Job]:
        """One pass: lock the due schedules, create their fires, claim what may start now, renew
        the leases of the fires this process runs. Returns the claimed jobs, for :meth:`execute`.

        Only as many schedules are locked as there are free workers: with every worker busy, due
        schedules wait in the store (for a free worker here, or another replica) instead of being
        planned again and again with nowhere to run.
        """
        now = self.clock() if now is None else now
        self._renew(now)
        jobs: builtins.list[_Job] = []
        while not self._stopping.is_set():
            limit = min(_BATCH, self._capacity())
            if limit <= 0:
                break
            locked = self.store.lock_due(now, self.owner, now + self.lease, limit)
            if locked:
                jobs += self._process(locked, now)
            # Everything due is claimed: now the schedules whose fires ended get their pass (in
            # this same tick), not before the fires due at the same instant start.
            if len(locked) < limit and not self._flush_pokes():
                break
        if self._ended and time.monotonic() - self._ended_since > self.poll_interval:
            self._flush_pokes()  # a long burst: those passes wait no longer than poll_interval
        return jobs

    def _flush_pokes(self) -> bool:
        """Poke the schedules whose fires ended here since the last flush; whether there were any."""
        with self._jobs_lock:
            names, self._ended = self._ended, {}
        for name in names:
            try:
                self.store.poke(name)
            except Exception:
                logger.exception(
                    "could not ask for a pass of schedule %r after its fire ended (it is passed "
                    "again when its lease runs out)",
                    name,
                )
        return bool(names)

    def _capacity(self) -> int:
        """How many more fires this process can run now."""
        return self.max_workers - len(self._jobs)

    def _process(self, locked: builtins.list[Schedule], now: float) -> builtins.list[_Job]:
        """Plan the schedules this pass locked and write every decision in one store call."""
        store = self.store
        try:
            active = store.active_fires_of([schedule.name for schedule in locked])
        except Exception:
            self._retry_later(locked, now)
            return []
        capacity = self._capacity()
        planned: builtins.list[tuple[Schedule, engine.Plan, PassWrite]] = []
        for schedule in locked:
            try:
                decided = engine.plan(
                    schedule,
                    self._trigger(schedule),
                    active.get(schedule.name, []),
                    now,
                    grace=self.grace,
                    capacity=capacity,
                    lease_until=now + self.lease,
                )
            except Exception:
                self._retry_later([schedule], now)
                continue
            capacity -= len(decided.claimable)
            planned.append((schedule, decided, self._pass_write(schedule, decided, now)))
        try:
            results = store.write_pass(self.owner, [write for _, _, write in planned])
        except Exception:
            self._retry_later([schedule for schedule, _, _ in planned], now)
            return []
        jobs = []
        for (schedule, decided, write), changed in zip(planned, results, strict=True):
            first = len(write.updates) - len(decided.claimable)  # the claims come last
            claims = zip(decided.claimable, write.updates[first:], changed[first:], strict=True)
            for fire, (_, changes, _), claimed in claims:
                if claimed:
                    for field, value in changes.items():
                        setattr(fire, field, value)
                    job = _Job(fire, schedule)
                    with self._jobs_lock:
                        self._jobs[fire.fire_id] = job
                    jobs.append(job)
            self.observer.planned(schedule.name, decided.missed, decided.skipped)
        return jobs

    def _pass_write(self, schedule: Schedule, decided: engine.Plan, now: float) -> PassWrite:
        """The store writes of one schedule's plan; its claims come last, in order."""
        updates: builtins.list[tuple[str, dict[str, Any], Any]] = [
            (fire.fire_id, {"cancel_requested": True}, ANY_OWNER) for fire in decided.cancel
        ]
        for fire in decided.superseded:
            status = "skipped" if fire.status == "pending" else "cancelled"
            error = "superseded by a newer fire (overlap='cancel')"
            updates.append((fire.fire_id, {"status": status, "ended_at": now, "error": error}, fire.owner))
        for fire in decided.claimable:
            claim = {
                "status": "running",
                "owner": self.owner,
                "lease_until": now + self.lease,
                "started_at": now,
                "attempts": fire.attempts + 1,
            }
            updates.append((fire.fire_id, claim, fire.owner))
        return PassWrite(schedule.name, decided.new_fires, updates, decided.changes)

    def _retry_later(self, schedules: builtins.list[Schedule], now: float) -> None:
        """A pass failed for ``schedules`` (logged): release them to be looked at again soon."""
        names = ", ".join(repr(schedule.name) for schedule in schedules[:5])
        more = f" and {len(schedules) - 5} more" if len(schedules) > 5 else ""
        logger.exception(
            "scheduler: schedule(s) %s%s could not be processed; trying again in %gs",
            names,
            more,
            self.poll_interval,
        )
        for schedule in schedules:
            with contextlib.suppress(Exception):
                self.store.unlock(schedule.name, self.owner, {"wake_at": now + self.poll_interval})

    def _trigger(self, schedule: Schedule) -> Trigger:
        """The schedule's trigger, built once per distinct description and shared by the schedules
        that have it (a pass must stay cheap, and shared triggers share their next-fire memo)."""
        known = self._schedule_triggers.get(schedule.name)
        if known is not None and known[0] == schedule.trigger:
            return known[1]
        key = json.dumps(schedule.trigger, sort_keys=True)
        trigger = self._triggers.get(key)
        if trigger is None:
            if len(self._triggers) > 10_000:
                self._triggers.clear()
            trigger = self._triggers[key] = trigger_from_dict(schedule.trigger)
        if len(self._schedule_triggers) > 100_000:
            self._schedule_triggers.clear()
        self._schedule_triggers[schedule.name] = (schedule.trigger, trigger)
        return trigger

    def _renew(self, now: float) -> None:
        with self._jobs_lock:
            ids = list(self._jobs)
        if not ids or now < self._next_renew:
            return
        self._next_renew = now + self.lease / 3
        for cancelled in self.store.renew_fires(ids, self.owner, now + self.lease):
            job = self._jobs.get(cancelled)
            if job is not None:
                job.token.cancel(
                    f"fire {cancelled} was cancelled: a newer fire of its schedule started (overlap='cancel')"
                )

    def next_wake(self, now: float | None = None) -> float:
        """When :meth:`tick` next has work: the store's earliest due time (unless every worker is
        busy: then a finishing fire wakes the driver), a lease renewal, or at the latest one
        ``poll_interval`` from now (changes made by other processes)."""
        now = self.clock() if now is None else now
        wake = now + self.poll_interval
        if self._capacity() > 0:
            if self._ended:
                return now  # the passes of ended fires (with every worker busy: when one ends)
            due = self.store.next_wake()
            if due is not None:
                wake = min(wake, due)
        if self._jobs:
            wake = min(wake, self._next_renew)
        return wake

    # -- running one fire ----------------------------------------------------------------------

    def _runs(self) -> Any:
        if self._runs_store is None:
            from kaygraph.ext.persistence import open_store

            self._runs_store = open_store(self._runs_target)
        return self._runs_store

    def _warm_up(self) -> None:
        """Import the durable-run machinery and open the runs store as a driver starts, so the
        first fires do not pay for it (a burst's lag); a failure is left to the fires to record."""
        with contextlib.suppress(Exception):
            _durable()
            self._runs()

    def _prepare(self, job: _Job) -> tuple[Any, Any, dict[str, Any]]:
        durable = _durable()
        graph = load_graph(job.schedule.graph_ref)
        fire = job.fire
        when = _dt.datetime.fromtimestamp(fire.fire_time, _dt.timezone.utc).isoformat().replace("+00:00", "Z")
        # Like Airflow's logical date: nodes know which fire they serve (idempotent work per fire).
        graph.set_params(
            {
                **graph.params,
                "schedule": fire.schedule,
                "fire_id": fire.fire_id,
                "fire_time": when,
                **(job.schedule.params or {}),
            }
        )
        runner = durable(graph, self._runs(), lease_seconds=self.lease)
        shared = json.loads(json.dumps(job.schedule.shared or {}))
        kwargs: dict[str, Any] = {"cancel": job.token, "listeners": [self.observer]}
        self.observer.expect(job.fire)
        return runner, shared, kwargs

    def execute(self, job: _Job) -> Fire:
        """Run a claimed fire to its end in this thread and record how it ended."""
        try:
            runner, shared, kwargs = self._prepare(job)
        except BaseException as exc:  # recorded on the fire; the scheduler goes on
            return self._finish(job, exc)
        return self._run_prepared(job, runner, shared, kwargs)

    async def execute_async(self, job: _Job) -> Fire:
        """:meth:`execute` for the async driver: ``AsyncGraph`` fires run on the loop, others in a thread."""
        import asyncio

        from kaygraph.core.async_node import AsyncGraph

        error: BaseException | None = None
        try:
            runner, shared, kwargs = await asyncio.to_thread(self._prepare, job)
            if not isinstance(runner.graph, AsyncGraph):
                return await asyncio.to_thread(self._run_prepared, job, runner, shared, kwargs)
            try:
                await runner.run_async(shared, run_id=job.fire.fire_id, **kwargs)
            except KayGraphError as exc:
                if not _is_unfinished_run(exc):
                    raise
                await runner.resume_async(job.fire.fire_id, **kwargs)
        except BaseException as exc:
            error = exc
        return await asyncio.to_thread(self._finish, job, error)

    def _run_prepared(self, job: _Job, runner: Any, shared: Any, kwargs: dict[str, Any]) -> Fire:
        """Run (or, if its run already exists unfinished, resume) a prepared fire; record how it ended."""
        error: BaseException | None = None
        try:
            try:
                runner.run(shared, run_id=job.fire.fire_id, **kwargs)
            except KayGraphError as exc:
                if not _is_unfinished_run(exc):
                    raise
                runner.resume(job.fire.fire_id, **kwargs)
        except BaseException as exc:
            error = exc
        return self._finish(job, error)

    def _finish(self, job: _Job, error: BaseException | None) -> Fire:
        fire = job.fire
        now = self.clock()
        if (job.shutdown and isinstance(error, RunCancelled)) or isinstance(error, RunLockedError):
            # Not this fire's end: a shutdown interrupted it, or another live process still writes
            # its run. Hand it back; it resumes after its last checkpointed node.
            changes: dict[str, Any] = {"status": "pending", "owner": None, "lease_until": None}
            logger.info("fire %s handed back (%s); it resumes on the next scheduler", fire.fire_id, error)
        elif error is None:
            changes = {"status": "succeeded", "ended_at": now, "lease_until": None, "error": None}
            started = fire.started_at if fire.started_at is not None else now
            logger.info("fire %s succeeded in %.2f s", fire.fire_id, now - started)
        else:
            status = "cancelled" if isinstance(error, RunCancelled) else "failed"
            text = f"{type(error).__name__}: {error}"
            changes = {"status": status, "ended_at": now, "lease_until": None, "error": text}
            if status == "failed":
                logger.error("fire %s of schedule %r failed: %s", fire.fire_id, fire.schedule, text)
        try:
            if not self.store.update_fire(fire.fire_id, changes, if_owner=self.owner):
                logger.warning(
                    "fire %s was taken over by another scheduler before it ended here", fire.fire_id
                )
            # Plan the schedule again now: a fire may wait for this one (queue, skip: one at a
            # time), and its wake time drops this fire's lease (else a pass at lease_until).
        except Exception:
            logger.exception(
                "could not record the end of fire %s (its lease expires and it is checked again)",
                fire.fire_id,
            )
        for field, value in changes.items():
            setattr(fire, field, value)
        self.observer.finished(fire)
        with self._jobs_lock:
            if not self._ended:
                self._ended_since = time.monotonic()
            self._ended[fire.schedule] = None  # poked by the next tick, once the due fires started
            self._jobs.pop(fire.fire_id, None)
            self._jobs_done.notify_all()
        self._notify()
        return fire

    # -- drivers -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` / :meth:`run_async` to stop: no new fires; running ones finish (for up to
        ``shutdown_timeout`` seconds, then they are cancelled and left resumable)."""
        self._stopping.set()
        self._notify()

    def _loop_once(self) -> tuple[builtins.list[_Job], float]:
        """One iteration shared by both drivers: a tick, and how long to sleep afterwards."""
        try:
            jobs = self.tick()
            delay = self.next_wake() - self.clock()
        except Exception as exc:
            logger.error(
                "scheduler: the store failed (%s: %s); retrying in %ss",
                type(exc).__name__,
                exc,
                self.poll_interval,
            )
            return [], self.poll_interval
        return jobs, max(0.0, min(delay, self.poll_interval))

    def run(self, *, handle_signals: bool = True) -> None:
        """Run until :meth:`stop`, Ctrl-C or SIGTERM: fires start on their worker threads.

        The first signal stops cleanly (no new fires; running ones finish, or after
        ``shutdown_timeout`` are cancelled and handed back so they resume elsewhere); a second
        signal cancels them at once.
        """
        self._stopping.clear()
        self._warm_up()
        # A fixed set of worker threads (daemons: a stuck graph never blocks the process's exit);
        # tick() claims no more fires than there are workers, so none wait in the queue for long.
        queue: SimpleQueue[_Job | None] = SimpleQueue()
        workers = [
            threading.Thread(target=self._work, args=(queue,), name=f"kaygraph-fire-{index}", daemon=True)
            for index in range(self.max_workers)
        ]
        for worker in workers:
            worker.start()
        with self._signals(handle_signals):
            logger.info("scheduler %s running on %s", self.owner, self.store.describe())
            while not self._stopping.is_set():
                jobs, delay = self._loop_once()
                for job in jobs:
                    queue.put(job)
                if not jobs:
                    self._wake.wait(delay)
                self._wake.clear()
            self._drain(self.shutdown_timeout)
            self._cancel_for_shutdown()
            self._drain(10)
            self._flush_pokes()
            for _ in workers:
                queue.put(None)
        logger.info("scheduler %s stopped", self.owner)

    async def run_async(self) -> None:
        """:meth:`run` on the running event loop (SIGINT / SIGTERM handled where the loop allows it)."""
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        self._notify = notify
        self._stopping.clear()
        await asyncio.to_thread(self._warm_up)
        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._on_signal)
                installed.append(signum)
        tasks: set[asyncio.Task[Fire]] = set()
        try:
            while not self._stopping.is_set():
                jobs, delay = await asyncio.to_thread(self._loop_once)
                for job in jobs:
                    task = asyncio.create_task(self.execute_async(job))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if not jobs:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(wake.wait(), delay)
                wake.clear()
            if tasks:
                await asyncio.wait(set(tasks), timeout=self.shutdown_timeout)
            self._cancel_for_shutdown()
            if tasks:
                await asyncio.wait(set(tasks), timeout=10)
            await asyncio.to_thread(self._flush_pokes)
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            self._notify = self._wake.set

    def _work(self, queue: SimpleQueue[_Job | None]) -> None:
        """A worker thread of :meth:`run`: execute fires until handed None."""
        while (job := queue.get()) is not None:
            self.execute(job)

    def _drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the fires this process runs to end."""
        with self._jobs_done:
            self._jobs_done.wait_for(lambda: not self._jobs, timeout)

    def _on_signal(self, *_: Any) -> None:
        if self._stopping.is_set():
            logger.warning("second signal: cancelling the running fires now")
            self._cancel_for_shutdown()
        else:
            logger.info("stopping: no new fires; running ones finish (up to %ss)", self.shutdown_timeout)
            self.stop()

    @contextlib.contextmanager
    def _signals(self, handle: bool) -> Iterator[None]:
        import signal

        if not handle or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            signum: signal.signal(signum, self._on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _cancel_for_shutdown(self) -> None:
        with self._jobs_lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.shutdown = True
            job.token.cancel("the scheduler is shutting down; the fire resumes on the next scheduler")

    def running(self) -> builtins.list[Fire]:
        """The fires this process runs right now."""
        with self._jobs_lock:
            return [job.fire for job in self._jobs.values()]

    def close(self) -> None:
        """Close the stores this scheduler opened."""
        with contextlib.suppress(Exception):
            self._flush_pokes()
        if self._owns_store:
            self.store.close()
        if self._runs_store is not None and (self._runs_target is None or isinstance(self._runs_target, str)):
            with contextlib.suppress(Exception):
                self._runs_store.close()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Scheduler {self.owner} on {self.store.describe()}>"


def pause(store: str | ScheduleStore | None, name: str) -> None:
    """Pause schedule ``name`` of ``store``: for tools that hold only a store (the dashboard)."""
    with Scheduler(store) as scheduler:
        scheduler.pause(name)


def resume(store: str | ScheduleStore | None, name: str) -> None:
    """Resume schedule ``name`` of ``store`` from its next fire time."""
    with Scheduler(store) as scheduler:
        scheduler.resume(name)


def trigger(store: str | ScheduleStore | None, name: str) -> str:
    """Fire schedule ``name`` of ``store`` now; returns the fire's durable run id."""
    with Scheduler(store) as scheduler:
        return scheduler.trigger(name).run_id


_durable_factory: Any = None


def _durable() -> Any:
    """``kaygraph.ext.persistence.durable``, imported on first use. Not a ``from ... import`` per
    fire: that takes the import lock (and the package's lazy export), and a fire's worker waited
    there behind every other thread before its first node."""
    global _durable_factory
    if _durable_factory is None:
        from kaygraph.ext.persistence.durable import durable

        _durable_factory = durable
    return _durable_factory


def _is_unfinished_run(exc: BaseException) -> bool:
    """Whether ``durable.run`` refused because the run exists unfinished (so resume it)."""
    from kaygraph.core.exceptions import ResumeError

    return isinstance(exc, ResumeError) and "already exists" in str(exc)


__all__ = ["Scheduler", "pause", "resume", "trigger"]
