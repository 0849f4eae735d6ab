"""Choosing a schedule store: from a URL, from the ``scheduler.*`` configuration, or passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

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

        return RedisScheduleStore(_without(target, "prefix"), prefix=options.get("prefix", "kaygraph:sched:"))
    if scheme in ("postgres", "postgresql"):
        from .postgres import PostgresScheduleStore

        return PostgresScheduleStore(_without(target, "schema"), schema=options.get("schema"))
    from .base import safe_url

    raise ScheduleStoreError(
        f"unknown schedule store URL {safe_url(target)!r}: use memory://, sqlite:///path.db, "
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
        return _without(store_url, "prefix")
    if scheme in ("postgres", "postgresql"):
        return store_url
    return store_url


def _without(url: str, option: str) -> str:
    parts = urlsplit(url)
    kept = [item for item in parts.query.split("&") if item and unquote(item.split("=", 1)[0]) != option]
    return urlunsplit(parts._replace(query="&".join(kept)))


__all__ = ["DEFAULTS", "configured_url", "open_schedule_store", "runs_url_for", "setting"]
