"""Choosing a schedule store: from a URL, from the ``scheduler.*`` configuration, or passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kaygraph.utils.urls import redact_url, without_options

from .abc import ScheduleStore
from .errors import ScheduleStoreError

#: The ``scheduler.*`` settings and their defaults (used when ``kaygraph.config`` is unavailable).
DEFAULTS: dict[str, Any] = {
    "backend": "sqlite",
    "url": None,
    "directory": ".kaygraph",
    "timezone": "UTC",
    "lease": 30,
    "poll_interval": 2,
    "max_workers": 8,
    "grace": 60,
    "shutdown_timeout": 30,
}

SQLITE_FILE = "schedules.db"


def setting(name: str) -> Any:
    """The value of ``scheduler.<name>`` from KayGraph's configuration, or its default."""
    try:
        from kaygraph.config import get_config
    except ImportError:
        return DEFAULTS[name]
    return get_config().get(f"scheduler.{name}", DEFAULTS[name])


def configured_url() -> str:
    """The URL of the configured store (``scheduler.url``, else from ``scheduler.backend``)."""
    url = setting("url")
    if url:
        return str(url)
    backend = setting("backend")
    if backend == "sqlite":
        return f"sqlite:///{Path(setting('directory')) / SQLITE_FILE}"
    if backend == "memory":
        return "memory://"
    raise ScheduleStoreError(
        f"scheduler.backend is {backend!r} but scheduler.url is not set; set it to the server URL, e.g. "
        f"{'redis://127.0.0.1:6379/0' if backend == 'redis' else 'postgresql://user@host/db'}"
    )


def open_schedule_store(target: str | ScheduleStore | None = None) -> ScheduleStore:
    """A store from an instance (returned as is), a URL, or None (the configured store).

    URLs: ``memory://[name]``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
    ``redis://host:6379/0`` (``?prefix=...``), ``postgresql://user@host/db`` (``?schema=...``).
    """
    if isinstance(target, ScheduleStore):
        return target
    if target is None:
        target = configured_url()
    if not isinstance(target, str):
        raise ScheduleStoreError(
            "a schedule store must be a ScheduleStore, a URL string or None, "
            f"got {target!r} ({type(target).__name__})"
        )
    parts = urlsplit(target)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "memory":
        from .memory import MemoryScheduleStore

        return MemoryScheduleStore.named(parts.netloc + parts.path)
    if scheme == "sqlite":
        from .sqlite import SQLiteScheduleStore

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return SQLiteScheduleStore(path or Path(setting("directory")) / SQLITE_FILE)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisScheduleStore

        prefix = options.get("prefix", "kaygraph:sched:")
        return RedisScheduleStore(without_options(target, ("prefix",)), prefix=prefix)
    if scheme in ("postgres", "postgresql"):
        from .postgres import PostgresScheduleStore

        return PostgresScheduleStore(without_options(target, ("schema",)), schema=options.get("schema"))
    raise ScheduleStoreError(
        f"unknown schedule store URL {redact_url(target)!r}: use memory://, sqlite:///path.db, "
        "redis://host:port/db or postgresql://user@host/db"
    )


def runs_url_for(store_url: str) -> str:
    """Where the durable runs of a scheduler on ``store_url`` go by default: the same database
    (other tables / keys), so one URL configures both; a SQLite file gets a ``runs.db`` next to it."""
    parts = urlsplit(store_url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return f"sqlite:///{Path(path or Path(setting('directory')) / SQLITE_FILE).with_name('runs.db')}"
    if scheme in ("redis", "rediss", "unix"):
        return without_options(store_url, ("prefix",))
    return store_url  # PostgreSQL: the same database, other tables; memory: the same process


__all__ = ["DEFAULTS", "configured_url", "open_schedule_store", "runs_url_for", "setting"]
