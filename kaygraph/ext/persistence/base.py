"""Shared partial implementations for the stores: run-id and row validation, filtering, errors.

Every backend module (``memory``, ``sqlite``, ``redis``, ``postgres``) builds on these, so the
rules (which run ids are valid, what a damaged row looks like, how runs are ordered and paged)
are written once and behave the same on every backend.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kaygraph.core.exceptions import CheckpointCorruptError, MissingExtraError, PersistenceError
from kaygraph.utils.urls import redact_url

from .abc import RUN_STATUSES, CheckpointStore, RunInfo

logger = logging.getLogger("kaygraph.ext.persistence")

#: What a run id may contain: it becomes part of keys, file-free SQL values and CLI arguments.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,199}$")
RUN_ID_RULE = "1 to 200 characters: letters, digits and . _ : @ + = - (starting with a letter or digit)"


def check_run_id(run_id: Any) -> str:
    """``run_id`` if it is a valid run id; ``PersistenceError`` saying what is allowed otherwise.

    Checked once, up front, by every entry point (run, resume, reads, delete, fork, CLI), so every
    backend refuses the same ids the same way instead of with a raw driver error.
    """
    if type(run_id) is not str:
        raise PersistenceError(
            f"a run id must be a str, got {_short(run_id)} ({type(run_id).__name__}); run ids are "
            f"{RUN_ID_RULE}"
        )
    if not RUN_ID_PATTERN.match(run_id):
        raise PersistenceError(f"invalid run id {_short(run_id)}: run ids are {RUN_ID_RULE}")
    return run_id


def _short(value: Any) -> str:
    """``repr(value)`` cut to 60 characters (a 1 MB id must not flood the message)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}...' ({len(str(value))} characters)"


def missing_extra(thing: str, package: str) -> MissingExtraError:
    """The error a backend module raises when its driver is not installed."""
    return MissingExtraError(
        f"{thing} needs the {package!r} package, which is not installed. Install it with: "
        "pip install 'kaygraph[persistence]'",
        extra="persistence",
        name=package,
    )


#: Seconds between the purges that new runs trigger: at most one a second per store, not one per
#: run (on the SQL stores each purge is a write transaction of its own, a sixth of a short run's
#: statements); an expired run is past its TTL already and waits at most this much longer.
PURGE_INTERVAL = 1.0


def purge_quietly(store: CheckpointStore) -> None:
    """Cleanup on write (before a new run is stored): delete expired runs, at most once per
    :data:`PURGE_INTERVAL` per store, but never make the write that triggered it fail; a failure
    is logged as a warning instead."""
    now = time.time()  # the clock expiry is judged by
    if store.next_purge_at - PURGE_INTERVAL <= now < store.next_purge_at:  # (a clock set back: purge)
        return
    store.next_purge_at = now + PURGE_INTERVAL
    try:
        store.purge_expired()
    except Exception as exc:
        logger.warning("could not delete expired runs from %s: %r", store.describe(), exc)


def check_run_fields(changes: Mapping[str, Any]) -> None:
    """Refuse changes to fields a :class:`RunInfo` does not have (a bug in the caller)."""
    unknown = set(changes) - set(RunInfo.FIELDS)
    if unknown:
        raise PersistenceError(f"unknown run fields {sorted(unknown)}; valid: {RunInfo.FIELDS}")


def run_from_row(values: Mapping[str, Any], run_id: str, where: str) -> RunInfo:
    """A :class:`RunInfo` from a stored row, every field type-checked (stores accept anything:
    SQLite any type in any column, Redis strings); ``CheckpointCorruptError`` naming the run and
    the store when the row is damaged."""
    try:
        fields: dict[str, Any] = {}
        for name in RunInfo.FIELDS:
            value = values.get(name)
            if isinstance(value, (bytes, bytearray)):
                value = bytes(value).decode()
            if value is None:
                if name in (
                    "run_id",
                    "graph_name",
                    "status",
                    "created_at",
                    "updated_at",
                    "steps",
                    "serializer",
                ):
                    raise ValueError(f"{name} is missing")
            elif name in RunInfo.INT_FIELDS:
                if isinstance(value, str):
                    value = int(value)
                if type(value) is not int:
                    raise ValueError(f"{name} is {value!r}, not an integer")
            elif name in RunInfo.FLOAT_FIELDS:
                if isinstance(value, str):
                    value = float(value)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"{name} is {value!r}, not a number")
                value = float(value)
            elif type(value) is not str:
                raise ValueError(f"{name} is {value!r} ({type(value).__name__}), not text")
            fields[name] = value
        if fields["run_id"] != run_id:
            raise ValueError(f"the row names run {fields['run_id']!r}")
        if fields["status"] not in RUN_STATUSES:
            raise ValueError(f"status {fields['status']!r} is not one of {RUN_STATUSES}")
        return RunInfo(**fields)
    except Exception as exc:
        raise CheckpointCorruptError(
            f"the metadata of run {run_id!r} in {where} is damaged ({exc}); delete the run "
            f"(kaygraph runs delete {run_id} --force) and start it again.",
            run_id=run_id,
        ) from exc


def readable_runs(rows: Iterable[tuple[str, Any]], build: Any) -> list[RunInfo]:
    """``build(run_id, row)`` for every row, skipping (and naming, in a warning) damaged ones, so
    one bad row never hides every other run of a listing."""
    runs = []
    for run_id, row in rows:
        try:
            info = build(run_id, row)
        except CheckpointCorruptError as exc:
            logger.warning("skipping run %r in a listing: %s", run_id, exc)
            continue
        if info is not None:
            runs.append(info)
    return runs


def sort_key(info: RunInfo) -> tuple[float, str]:
    """The listing order of every store: newest first, ties by run id (descending)."""
    return (info.created_at, info.run_id)


def select_runs(
    runs: list[RunInfo],
    *,
    graph_name: str | None,
    status: str | None,
    since: float | None,
    until: float | None,
    limit: int | None,
    before: tuple[float, str] | None = None,
) -> list[RunInfo]:
    """Filter, order and page runs in Python, for stores without a query language."""
    selected = [
        info
        for info in runs
        if (graph_name is None or info.graph_name == graph_name)
        and (status is None or info.status == status)
        and (since is None or info.created_at >= since)
        and (until is None or info.created_at < until)
        and (before is None or sort_key(info) < tuple(before))
    ]
    selected.sort(key=sort_key, reverse=True)
    return selected if limit is None else selected[:limit]


def in_ranges(seq: int, ranges: Iterable[tuple[int, int]]) -> bool:
    """Whether ``seq`` falls in one of the half-open ``(low, high)`` ranges."""
    return any(low <= seq < high for low, high in ranges)


__all__ = [
    "RUN_ID_PATTERN",
    "RUN_ID_RULE",
    "check_run_fields",
    "check_run_id",
    "in_ranges",
    "logger",
    "missing_extra",
    "purge_quietly",
    "readable_runs",
    "redact_url",
    "run_from_row",
    "select_runs",
    "sort_key",
]
