"""Runs read from a persistence store: :class:`PersistenceSource`, and :class:`CountingSource`
which counts the queries it forwards."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from .abc import Page, RunSource
from .errors import ApiError

#: Run statuses a filter may name (``pending``: a fork that has not started yet).
STATUSES = ("running", "succeeded", "failed", "cancelled", "pending")


def encode_cursor(value: Any) -> str:
    """An opaque, URL-safe cursor for ``value`` (JSON)."""
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, name: str = "cursor") -> Any:
    """The value of a cursor made by :func:`encode_cursor`; ``ApiError`` 400 naming ``name`` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeError):
        raise _bad_cursor(cursor, name) from None


def _bad_cursor(cursor: str, name: str = "cursor") -> ApiError:
    return ApiError(
        400,
        f"{name} {cursor[:80]!r} is not a cursor this server made; pass the next_cursor of a "
        "previous page, or leave it out for the first page",
        culprit=name,
    )


def run_dict(info: Any) -> dict[str, Any]:
    """A run row as the API shows it (``RunInfo`` fields plus derived ones, lease details left out)."""
    row = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
    created, updated = row.get("created_at") or 0.0, row.get("updated_at") or 0.0
    finished = row.get("status") in ("succeeded", "failed", "cancelled")
    return {
        "run_id": row["run_id"],
        "graph": row.get("graph_name"),
        "graph_ref": row.get("graph_ref"),
        "status": row.get("status"),
        "created_at": created,
        "updated_at": updated,
        "ended_at": updated if finished else None,
        "duration": (updated - created) if finished and created else None,
        "steps": row.get("steps", 0),
        "error": row.get("error"),
        "traceback": row.get("traceback"),
        "parent_run_id": row.get("parent_run_id"),
        "parent_seq": row.get("parent_seq"),
        "serializer": row.get("serializer"),
        "live": bool(row.get("lease_owner")),
    }


def step_dict(record: Any) -> dict[str, Any]:
    """One history entry (persistence's ``StepRecord``) as the API shows it."""
    return {
        "step": record.step,
        "seq": record.seq,
        "kind": record.kind,
        "node_id": record.node_id,
        "path": [str(part) for part in record.path],
        "action": record.action,
        "time": record.timestamp,
        "duration": record.duration,
        "attempts": getattr(record, "attempts", 1),
    }


def event_dict(event: Any) -> dict[str, Any]:
    """One entry of a run's event log (persistence's ``RunEvent``) as the API and SSE show it."""
    return {
        "seq": event.seq,
        "run_id": event.run_id,
        "type": event.kind,
        "time": event.timestamp,
        "step": event.step,
        "node_id": event.node_id,
        "path": [str(part) for part in event.path],
        "status": event.status,
        "action": event.action,
        "duration": event.duration,
        "attempt": event.attempt,
        "index": event.index,
        "error": event.error,
    }


class PersistenceSource(RunSource):
    """Reads runs from a persistence store (or its URL) with the persistence read API
    (``runs_page``, ``steps_page``, ``state_at``, ``events``, ``changes``): every call is one
    bounded, indexed read, however many runs or steps there are."""

    def __init__(self, store: Any = None, *, serializer: Any = None) -> None:
        from kaygraph.ext.persistence import CheckpointStore, open_store

        self.store = store if isinstance(store, CheckpointStore) else open_store(store)
        self._owns_store = not isinstance(store, CheckpointStore)
        self.serializer = serializer
        import kaygraph.ext.persistence as persistence

        self._persistence = persistence

    # -- runs ----------------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        graph: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        from kaygraph.core.exceptions import PersistenceError

        inner = None
        if cursor is not None:
            inner = decode_cursor(cursor)
            if not isinstance(inner, str):
                raise _bad_cursor(cursor)
        try:
            page = self._persistence.runs_page(
                self.store,
                graph_name=graph,
                status=status,
                since=since,
                until=until,
                limit=limit,
                cursor=inner,
            )
        except PersistenceError as exc:
            if cursor is not None and "cursor" in str(exc):
                raise _bad_cursor(cursor) from None
            raise
        next_cursor = None if page.next_cursor is None else encode_cursor(page.next_cursor)
        return Page([run_dict(info) for info in page.runs], next_cursor)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return run_dict(self._persistence.get_run(self.store, run_id))

    def counts(self, *, graph: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = self._persistence.count_runs(self.store, graph_name=graph)
        counts.pop("total", None)
        return counts

    def changes(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        if cursor is None:  # start now: only later changes are news
            return [], time.time()
        found = self._persistence.changes(self.store, cursor)
        return [run_dict(info) for info in found.runs], found.cursor

    # -- steps and state -----------------------------------------------------------------------

    def list_steps(self, run_id: str, *, cursor: str | None = None, limit: int = 100) -> Page:
        after = None
        if cursor is not None:
            after = decode_cursor(cursor)
            if not isinstance(after, int) or isinstance(after, bool):
                raise _bad_cursor(cursor)
        # The history also holds start/resume/end entries; a page holds ``limit`` node steps.
        found: list[Any] = []
        last = after
        while True:
            page = self._persistence.steps_page(self.store, run_id, after=after, limit=limit + 1 - len(found))
            for record in page.steps:
                last = record.seq
                if record.kind == "step":
                    found.append(record)
            if len(found) > limit or page.next_cursor is None:
                break
            after = page.next_cursor
        if len(found) > limit:
            found = found[:limit]
            last = found[-1].seq
            next_cursor: str | None = encode_cursor(last)
        else:
            next_cursor = None
        return Page([step_dict(record) for record in found], next_cursor, last)

    def state_at(self, run_id: str, step: int) -> dict[str, Any]:
        from kaygraph.core.exceptions import PersistenceError, RunNotFoundError

        try:
            found = self._persistence.state_at(self.store, run_id, step=step, serializer=self.serializer)
        except RunNotFoundError:
            raise
        except PersistenceError as exc:
            if "step" not in str(exc):
                raise
            raise ApiError(
                404, f"{exc}; ask for a step the run has (GET .../steps)", culprit="step"
            ) from None
        if found.step != step:
            raise ApiError(
                404,
                f"run {run_id!r} keeps no state after step {step} (its oldest kept state is after step "
                f"{found.step}: older ones were pruned, see persistence.keep_snapshots)",
                culprit="step",
            )
        state: dict[str, Any] = found.state
        return state

    def events_after(self, run_id: str, seq: int, *, limit: int = 500) -> list[dict[str, Any]]:
        return [
            event_dict(event)
            for event in self._persistence.events(self.store, run_id, after=seq, limit=limit)
        ]

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def describe(self) -> str:
        return str(self.store.describe())


class CountingSource(RunSource):
    """Forwards to ``inner`` and counts each call (``queries``), per method (``by_method``)."""

    def __init__(self, inner: RunSource) -> None:
        self.inner = inner
        self.queries = 0
        self.by_method: dict[str, int] = {}
        self._lock = threading.Lock()

    def _count(self, name: str) -> Callable[..., Any]:
        with self._lock:
            self.queries += 1
            self.by_method[name] = self.by_method.get(name, 0) + 1
        method: Callable[..., Any] = getattr(self.inner, name)
        return method

    def list_runs(self, **kwargs: Any) -> Page:
        page: Page = self._count("list_runs")(**kwargs)
        return page

    def get_run(self, run_id: str) -> dict[str, Any]:
        row: dict[str, Any] = self._count("get_run")(run_id)
        return row

    def list_steps(self, run_id: str, **kwargs: Any) -> Page:
        page: Page = self._count("list_steps")(run_id, **kwargs)
        return page

    def state_at(self, run_id: str, step: int) -> dict[str, Any]:
        state: dict[str, Any] = self._count("state_at")(run_id, step)
        return state

    def events_after(self, run_id: str, seq: int, **kwargs: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self._count("events_after")(run_id, seq, **kwargs)
        return events

    def counts(self, **kwargs: Any) -> dict[str, int]:
        counts: dict[str, int] = self._count("counts")(**kwargs)
        return counts

    def changes(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        result: tuple[list[dict[str, Any]], Any] = self._count("changes")(cursor)
        return result

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return self.inner.describe()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


__all__ = ["STATUSES", "CountingSource", "PersistenceSource", "decode_cursor", "encode_cursor", "run_dict"]
