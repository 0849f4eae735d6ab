"""Runs read from a persistence store: :class:`PersistenceSource`, and :class:`CountingSource`
which counts the queries it forwards."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

from .abc import Page, RunSource
from .errors import ApiError

#: Run statuses a filter may name.
STATUSES = ("running", "succeeded", "failed", "cancelled")


def encode_cursor(value: Any) -> str:
    """An opaque, URL-safe cursor for ``value`` (JSON)."""
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, name: str = "cursor") -> Any:
    """The value of a cursor made by :func:`encode_cursor`; ``ApiError`` 400 naming ``name`` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, binascii.Error, UnicodeError):
        raise ApiError(
            400,
            f"{name} {cursor[:80]!r} is not a cursor this server made; pass the next_cursor of a "
            "previous page, or leave it out for the first page",
            culprit=name,
        ) from None


def run_dict(info: Any) -> dict[str, Any]:
    """A run row as the API shows it (``RunInfo`` fields plus derived ones, lease details left out)."""
    row = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
    created, updated = row.get("created_at") or 0.0, row.get("updated_at") or 0.0
    finished = row.get("status") not in ("running", None)
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
        "parent_run_id": row.get("parent_run_id"),
        "parent_step": row.get("parent_step"),
        "serializer": row.get("serializer"),
        "live": bool(row.get("lease_owner")),
    }


def step_dict(record: Any) -> dict[str, Any]:
    """One history entry (``StepRecord``) as the API shows it."""
    return {
        "step": record.step,
        "seq": record.seq,
        "kind": record.kind,
        "node_id": record.node_id,
        "path": [str(part) for part in record.path],
        "action": record.action,
        "time": record.timestamp,
        "duration": record.duration,
    }


class PersistenceSource(RunSource):
    """Reads runs from a :class:`~kaygraph.ext.persistence.abc.CheckpointStore` (or its URL)."""

    def __init__(self, store: Any = None, *, serializer: Any = None) -> None:
        from kaygraph.ext.persistence import CheckpointStore, open_store

        self.store = store if isinstance(store, CheckpointStore) else open_store(store)
        self._owns_store = not isinstance(store, CheckpointStore)
        self.serializer = serializer
        self._persistence = __import__("kaygraph.ext.persistence", fromlist=["durable"])

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
        after: tuple[float, str] | None = None
        if cursor is not None:
            value = decode_cursor(cursor)
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[1], str)):
                decode_cursor("!", "cursor")  # raises the same message
            after = (float(value[0]), value[1])
            until = after[0] + 1e-6 if until is None else min(until, after[0] + 1e-6)
        rows = self.store.list_runs(
            graph_name=graph, status=status, since=since, until=until, limit=limit + 200
        )
        if after is not None:
            rows = [row for row in rows if (row.created_at, row.run_id) < after]
        rows.sort(key=lambda row: (row.created_at, row.run_id), reverse=True)
        page = rows[:limit]
        more = len(rows) > limit
        next_cursor = encode_cursor([page[-1].created_at, page[-1].run_id]) if more and page else None
        return Page([run_dict(row) for row in page], next_cursor)

    def get_run(self, run_id: str) -> dict[str, Any]:
        row = run_dict(self._persistence.get_run(self.store, run_id))
        history = self._history(run_id, False)
        row["last_seq"] = history[-1].seq if history else -1
        return row

    def counts(self, *, graph: str | None = None) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for row in self.store.list_runs(graph_name=graph):
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    def changes(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        rows = self.store.list_runs(limit=200)
        latest = {row.run_id: row.updated_at for row in rows}
        if cursor is None:
            return [], latest
        changed = [run_dict(row) for row in rows if cursor.get(row.run_id) != row.updated_at]
        return changed, latest

    # -- steps and state -----------------------------------------------------------------------

    def _history(self, run_id: str, decode: bool) -> list[Any]:
        return list(self._persistence.steps(self.store, run_id, serializer=self.serializer, decode=decode))

    def list_steps(self, run_id: str, *, cursor: str | None = None, limit: int = 100) -> Page:
        start = 0
        if cursor is not None:
            value = decode_cursor(cursor)
            if not isinstance(value, int):
                decode_cursor("!", "cursor")
            start = value
        history = [record for record in self._history(run_id, False) if record.kind == "step"]
        page = history[start : start + limit]
        more = start + limit < len(history)
        return Page([step_dict(record) for record in page], encode_cursor(start + limit) if more else None)

    def state_at(self, run_id: str, step: int) -> dict[str, Any]:
        history = self._history(run_id, True)
        matches = [record for record in history if record.step == step]
        if matches:
            return dict(matches[-1].state or {})
        kept = sorted({record.step for record in history})
        raise ApiError(
            404,
            f"run {run_id!r} has no step {step}; the kept steps are "
            f"{kept[0] if kept else 0}..{kept[-1] if kept else 0}",
            culprit="step",
        )

    def events_after(self, run_id: str, seq: int, *, limit: int = 500) -> list[dict[str, Any]]:
        events = []
        for record in self._history(run_id, False):
            if record.seq <= seq:
                continue
            kind = {"start": "run_start", "resume": "run_resume", "step": "node_end", "end": "run_end"}[
                record.kind
            ]
            events.append({"seq": record.seq, "run_id": run_id, "type": kind, **step_dict(record)})
            if len(events) >= limit:
                break
        return events

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
