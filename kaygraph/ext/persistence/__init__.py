"""Durable, resumable runs: every node's result is checkpointed, a killed run continues where it stopped.

    from kaygraph.ext.persistence import durable

    runner = durable(graph)                         # the configured store (default: .kaygraph/runs.db)
    result = runner.run(shared, run_id="invoice-42")
    result = runner.resume("invoice-42")            # after a crash, in a new process

Reading runs (what the dashboard calls, see ``history``): ``runs_page``, ``count_runs``, ``get_run``,
``steps_page``, ``iter_steps``, ``state_at``, ``events``, ``changes``, ``fork_run``.

Stores (``kaygraph.ext.persistence.<module>``): ``MemoryStore`` (memory), ``SQLiteStore`` (sqlite,
the default), ``RedisStore`` (redis), ``PostgresStore`` (postgres); pick one with a URL or the
``persistence.*`` configuration. Names are loaded on first use, so importing this package loads
no database driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaygraph.ext.base import PackageExtension, register_extension
from kaygraph.utils.imports import lazy_exports

if TYPE_CHECKING:
    from .abc import RUN_STATUSES, CheckpointStore, RunInfo, Serializer
    from .durable import DurableGraph, RunResult, durable
    from .errors import StoreNotFoundError
    from .history import (
        DELETE,
        Changes,
        RunEvent,
        RunPage,
        StateAt,
        StepPage,
        StepRecord,
        changes,
        count_runs,
        delete_run,
        events,
        fork_run,
        get_run,
        iter_steps,
        list_runs,
        request_cancel,
        runs_page,
        state_at,
        steps,
        steps_page,
        wait_for_change,
    )
    from .memory import MemoryStore
    from .postgres import PostgresStore
    from .redis import RedisStore
    from .serialization import JSONSerializer, PickleSerializer, register_type
    from .sqlite import SQLiteStore
    from .stores import open_store

__version__ = "1.0.0"

_EXPORTS = {
    "RUN_STATUSES": "abc",
    "CheckpointStore": "abc",
    "RunInfo": "abc",
    "Serializer": "abc",
    "DurableGraph": "durable",
    "RunResult": "durable",
    "durable": "durable",
    "StoreNotFoundError": "errors",
    "DELETE": "history",
    "Changes": "history",
    "RunEvent": "history",
    "RunPage": "history",
    "StateAt": "history",
    "StepPage": "history",
    "StepRecord": "history",
    "changes": "history",
    "count_runs": "history",
    "delete_run": "history",
    "events": "history",
    "fork_run": "history",
    "get_run": "history",
    "iter_steps": "history",
    "list_runs": "history",
    "request_cancel": "history",
    "runs_page": "history",
    "state_at": "history",
    "steps": "history",
    "steps_page": "history",
    "wait_for_change": "history",
    "MemoryStore": "memory",
    "SQLiteStore": "sqlite",
    "RedisStore": "redis",
    "PostgresStore": "postgres",
    "JSONSerializer": "serialization",
    "PickleSerializer": "serialization",
    "register_type": "serialization",
    "open_store": "stores",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


#: Backends that need a driver: (name shown, module imported, package to install).
_DRIVERS = (("Redis", "redis", "redis"), ("PostgreSQL", "psycopg", "psycopg"))


def _backends_ready() -> str:
    """Which stores work here, for ``kaygraph info``: SQLite and memory always (stdlib), Redis and
    PostgreSQL when their driver imports, e.g. ``"SQLite and memory ready; Redis/PostgreSQL need
    redis, psycopg: pip install 'kaygraph[persistence]'"``."""
    import importlib

    from kaygraph.utils.imports import install_hint

    ready, missing = ["SQLite", "memory"], []
    for label, module, package in _DRIVERS:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append((label, package))
        else:
            ready.append(label)
    text = ", ".join(ready[:-1]) + f" and {ready[-1]} ready"
    if missing:
        labels = "/".join(label for label, _ in missing)
        verb = "needs" if len(missing) == 1 else "need"
        packages = ", ".join(package for _, package in missing)
        text += f"; {labels} {verb} {packages}: {install_hint('persistence')}"
    return text


def _describe() -> dict[str, str]:
    """``kaygraph info``: the configured store; stores open lazily, per durable graph."""
    from pathlib import Path

    from .base import redact_url
    from .stores import SQLITE_FILE, setting

    # A URL to paste into --store (and into persistence.url), its password hidden.
    url = setting("url")
    if url:
        location = redact_url(url)
    elif setting("backend") == "sqlite":
        path = Path(setting("directory")) / SQLITE_FILE
        location = f"sqlite:///{path.as_posix()} (durability={setting('durability')})"
    elif setting("backend") == "memory":
        location = "memory:// (this process only)"
    else:
        location = f"{setting('backend')} (persistence.url is not set)"
    return {
        "store": location,
        "ttl": f"{setting('ttl')} s",
        "serializer": str(setting("serializer")),
        "backends": _backends_ready(),
    }


register_extension(PackageExtension("persistence", __version__, describe=_describe))

__all__ = [
    "DELETE",
    "RUN_STATUSES",
    "Changes",
    "CheckpointStore",
    "DurableGraph",
    "JSONSerializer",
    "MemoryStore",
    "PickleSerializer",
    "PostgresStore",
    "RedisStore",
    "RunEvent",
    "RunInfo",
    "RunPage",
    "RunResult",
    "SQLiteStore",
    "Serializer",
    "StateAt",
    "StepPage",
    "StepRecord",
    "StoreNotFoundError",
    "changes",
    "count_runs",
    "delete_run",
    "durable",
    "events",
    "fork_run",
    "get_run",
    "iter_steps",
    "list_runs",
    "open_store",
    "register_type",
    "request_cancel",
    "runs_page",
    "state_at",
    "steps",
    "steps_page",
    "wait_for_change",
]
