"""Choosing a store: from a URL, from the ``persistence.*`` configuration, or passed in directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from kaygraph.core.exceptions import PersistenceError
from kaygraph.utils.urls import redact_url, without_options

from .abc import CheckpointStore

#: The ``persistence.*`` settings and their defaults (used when ``kaygraph.config`` is unavailable).
DEFAULTS: dict[str, Any] = {
    "backend": "sqlite",
    "url": None,
    "directory": ".kaygraph",
    "ttl": 86400,
    "keep_snapshots": 10,
    "durability": "normal",
    "serializer": "json",
}

SQLITE_FILE = "runs.db"


def setting(name: str) -> Any:
    """The value of ``persistence.<name>`` from KayGraph's configuration, or its default."""
    try:
        from kaygraph.config import get_config
    except ImportError:
        return DEFAULTS[name]
    return get_config().get(f"persistence.{name}", DEFAULTS[name])


def open_store(target: str | CheckpointStore | None = None, *, create: bool = True) -> CheckpointStore:
    """A store from an instance (returned as is), a URL, or None (the configured store).

    URLs: ``memory://[name]``, ``sqlite:///relative.db``, ``sqlite:////absolute.db``
    (``?durability=full``), ``redis://host:6379/0`` (``?prefix=...``),
    ``postgresql://user@host/db`` (``?schema=...``). A SQLite URL never creates directories
    (the configured default directory ``.kaygraph`` is created); ``create=False`` (read-only
    commands) raises ``StoreNotFoundError`` instead of creating a SQLite file.
    """
    if isinstance(target, CheckpointStore):
        return target
    if target is None:
        url = setting("url")
        if url:
            return open_store(url, create=create)
        backend = setting("backend")
        if backend == "sqlite":
            from .sqlite import SQLiteStore

            return SQLiteStore(
                Path(setting("directory")) / SQLITE_FILE,
                durability=setting("durability"),
                create=create,
                create_dirs=True,
            )
        if backend == "memory":
            return open_store("memory://")
        raise PersistenceError(
            f"persistence.backend is {backend!r} but persistence.url is not set; set it to the "
            f"server URL, e.g. {'redis://127.0.0.1:6379/0' if backend == 'redis' else 'postgresql://user@host/db'}"
        )
    if not isinstance(target, str):
        raise PersistenceError(
            "a store must be a CheckpointStore, a URL string or None, "
            f"got {target!r} ({type(target).__name__})"
        )
    return _from_url(target, create)


def _from_url(url: str, create: bool = True) -> CheckpointStore:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme == "memory":
        from .memory import MemoryStore

        return MemoryStore.named(parts.netloc + parts.path)
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        default = not path
        if default:
            path = str(Path(setting("directory")) / SQLITE_FILE)
        return SQLiteStore(
            path,
            durability=options.get("durability", setting("durability")),
            create=create,
            create_dirs=default,
        )
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisStore

        return RedisStore(without_options(url, ("prefix",)), prefix=options.get("prefix", "kaygraph:"))
    if scheme in ("postgres", "postgresql"):
        from .postgres import PostgresStore

        return PostgresStore(without_options(url, ("schema",)), schema=options.get("schema"))
    raise PersistenceError(
        f"unknown store URL {redact_url(url)!r}: use memory://, sqlite:///path.db, redis://host:port/db or "
        "postgresql://user@host/db"
    )


__all__ = ["DEFAULTS", "open_store", "setting"]
