"""Scheduled graphs: cron and interval runs as durable runs, exactly once, DST-correct, on several replicas.

    from kaygraph.ext.scheduler import Scheduler, cron, every

    scheduler = Scheduler()              # the configured store (default: .kaygraph/schedules.db)
    scheduler.add("nightly", "myapp.graphs:report", cron("30 1 * * *", timezone="Europe/London"))
    scheduler.add("poll", "myapp.graphs:poll", every(minutes=5), overlap="queue")
    scheduler.run()                                          # blocks; Ctrl-C / SIGTERM stop it cleanly

Stores (``kaygraph.ext.scheduler.<module>``): ``MemoryScheduleStore`` (memory),
``SQLiteScheduleStore`` (sqlite, the default), ``RedisScheduleStore`` (redis),
``PostgresScheduleStore`` (postgres); pick one with a URL or ``scheduler.*`` configuration. Names
load on first use, so importing this package loads no database driver. ``pause(store, name)``,
``resume(store, name)`` and ``trigger(store, name)`` serve tools that hold only a store (the dashboard).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaygraph.ext.base import PackageExtension, register_extension
from kaygraph.utils.imports import lazy_exports

if TYPE_CHECKING:
    from .abc import Fire, Schedule, ScheduleStore
    from .errors import (
        InvalidTriggerError,
        ScheduleExistsError,
        ScheduleNotFoundError,
        SchedulerError,
        ScheduleStoreError,
    )
    from .memory import MemoryScheduleStore
    from .postgres import PostgresScheduleStore
    from .redis import RedisScheduleStore
    from .scheduler import Scheduler, pause, resume, trigger
    from .sqlite import SQLiteScheduleStore
    from .stores import open_schedule_store
    from .triggers import CronTrigger, IntervalTrigger, Trigger, cron, every

__version__ = "1.0.0"

_EXPORTS = {
    "Fire": "abc",
    "Schedule": "abc",
    "ScheduleStore": "abc",
    "InvalidTriggerError": "errors",
    "ScheduleExistsError": "errors",
    "ScheduleNotFoundError": "errors",
    "SchedulerError": "errors",
    "ScheduleStoreError": "errors",
    "MemoryScheduleStore": "memory",
    "PostgresScheduleStore": "postgres",
    "RedisScheduleStore": "redis",
    "SQLiteScheduleStore": "sqlite",
    "Scheduler": "scheduler",
    "pause": "scheduler",
    "resume": "scheduler",
    "trigger": "scheduler",
    "open_schedule_store": "stores",
    "CronTrigger": "triggers",
    "IntervalTrigger": "triggers",
    "Trigger": "triggers",
    "cron": "triggers",
    "every": "triggers",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def _describe() -> dict[str, str]:
    """``kaygraph info``: the configured store and what it holds; a scheduler runs where
    ``Scheduler.run()`` is called."""
    from .stores import configured_url, setting

    lines = {"store": "", "timezone": str(setting("timezone"))}
    try:
        url = configured_url()
        from .base import redact_url

        lines["store"] = redact_url(url)
        if url.startswith("memory:"):
            return lines
        from .stores import open_schedule_store

        with open_schedule_store(url) as store:
            schedules = store.list_schedules()
            running = store.list_fires(status="running", limit=1000)
            wake = store.next_wake()
    except Exception as exc:  # kaygraph info must show the rest even when the store is down
        lines["state"] = f"store unavailable ({type(exc).__name__}: {exc})"
        return lines
    paused = sum(schedule.paused for schedule in schedules)
    lines["schedules"] = f"{len(schedules)} ({paused} paused), {len(running)} fire(s) running"
    if wake is not None and schedules:
        import datetime as dt

        lines["next due"] = dt.datetime.fromtimestamp(wake, dt.timezone.utc).isoformat(timespec="seconds")
    return lines


register_extension(PackageExtension("scheduler", __version__, describe=_describe))

__all__ = [
    "CronTrigger",
    "Fire",
    "IntervalTrigger",
    "InvalidTriggerError",
    "MemoryScheduleStore",
    "PostgresScheduleStore",
    "RedisScheduleStore",
    "SQLiteScheduleStore",
    "Schedule",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "ScheduleStore",
    "ScheduleStoreError",
    "Scheduler",
    "SchedulerError",
    "Trigger",
    "cron",
    "every",
    "open_schedule_store",
    "pause",
    "resume",
    "trigger",
]
