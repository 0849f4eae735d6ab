"""The Checkpointer: the listener that writes a durable run's records as the run goes.

One record per completed node (a delta: what the node changed), per finished batch item (its
result, written as it comes back, so a crash reruns only unfinished items), per retry and node
error, a ``node start`` event for nodes slow enough to be watched live, and a snapshot every
``snapshot_every`` records. Pruning keeps the last ``keep_snapshots`` snapshots with the records
after the oldest of them, plus the older snapshots a kept one still references.
"""

from __future__ import annotations

import threading
import time
import traceback as _traceback
from collections.abc import Mapping
from typing import Any, Protocol

from kaygraph.core.async_node import AsyncParallelBatchGraph
from kaygraph.core.events import RunListener
from kaygraph.core.exceptions import RunCancelled, RunLockedError, RunNotFoundError, SerializationError
from kaygraph.core.graph import Graph

from .abc import CheckpointStore, Serializer
from .leases import release
from .records import SCHEMA_VERSION, RunState, action_json, frame, join_encoded, record_json, to_json
from .tracking import Delta, StateTracker, key_json


class WriterSettings(Protocol):
    """What a Checkpointer reads from its runner (a DurableGraph): the store and the retention
    settings. A protocol, so this module does not import the runner that imports it."""

    store: CheckpointStore
    serializer: Serializer
    snapshot_every: int
    keep_snapshots: int | None
    lease_seconds: float
    live_threshold: float | None
    ttl: float | None


#: The run row is refreshed (steps, updated_at, lease expiry) at most this often, in seconds.
ROW_REFRESH = 1.0
#: Error and traceback texts kept in run rows and records, in characters.
ERROR_LIMIT = 2000
TRACEBACK_LIMIT = 8000


def row_text(message: str, limit: int = ERROR_LIMIT) -> str:
    """Text fit for a run row: bounded, and lone surrogates (from undecodable file names) escaped,
    since database text columns reject them and the run must still be marked failed."""
    if len(message) > limit:
        message = message[: limit // 2] + "\n...\n" + message[-limit // 2 :]
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def ended_status(error: BaseException | None) -> str:
    """The status a run gets from the error that ended it."""
    if error is None:
        return "succeeded"
    if isinstance(error, RunCancelled):
        return "cancelled"
    return "failed"


class WriterState:
    """The writer's side of a run's position: next node, batch items done (as JSON texts), params."""

    __slots__ = ("items", "last_action", "params_text", "position", "steps")

    def __init__(self) -> None:
        self.position: tuple[Any, ...] = ()
        self.last_action: Any = None
        self.items: dict[tuple[Any, ...], dict[int, str]] = {}
        self.steps = 0
        self.params_text: str | None = None

    @classmethod
    def resuming(cls, stored: RunState) -> WriterState:
        """The writer's position continuing a run whose records fold to ``stored``."""
        writer = cls()
        writer.position, writer.last_action, writer.steps = stored.position, stored.last_action, stored.steps
        writer.params_text = None if stored.params is None else to_json(stored.params)
        writer.items = {
            path: {index: to_json(value) for index, value in done.items()}
            for path, done in stored.items.items()
        }
        return writer

    def forget_items(self, path: tuple[Any, ...]) -> None:
        if not self.items:
            return
        depth = len(path)
        for key in [key for key in self.items if key[:depth] == path]:
            del self.items[key]

    def snapshot_fields(self) -> str:
        """The position part of a snapshot record, as JSON fields (leading comma)."""
        items = ",".join(
            f"[{to_json(list(path))},[" + ",".join(f"[{i},{text}]" for i, text in done.items()) + "]]"
            for path, done in self.items.items()
        )
        text = f',"x":{to_json(list(self.position))},"la":{to_json(self.last_action)},"I":[{items}]'
        if self.params_text is not None:
            text += f',"m":{self.params_text}'
        return text


class Checkpointer(RunListener):
    """Writes a run's records (see the module docstring); one per durable run attempt."""

    def __init__(self, durable_graph: WriterSettings, run_id: str, owner: str, position: WriterState) -> None:
        self.store = durable_graph.store
        self.serializer = durable_graph.serializer
        self.snapshot_every = durable_graph.snapshot_every
        self.keep_snapshots = durable_graph.keep_snapshots
        self.lease_seconds = durable_graph.lease_seconds
        self.live_threshold = durable_graph.live_threshold
        self.ttl = durable_graph.ttl
        self.run_id = run_id
        self.owner = owner
        self.writer = position
        self.tracker = StateTracker(self.serializer)
        self.seq = 0
        #: The newest snapshot, the kept window ``[(seq, needed snapshots)]`` and the older
        #: snapshots still referenced.
        self.last_snapshot = 0
        self.window: list[tuple[int, tuple[int, ...]]] = []
        self.retained: set[int] = set()
        self._parallel: set[tuple[Any, ...]] = set()
        self._path_texts: dict[tuple[Any, ...], str] = {}
        self._durations: dict[tuple[Any, ...], float] = {}
        self._attempts: dict[tuple[Any, ...], int] = {}
        self._row_refreshed = time.monotonic()
        #: No cancel request can be pending yet: the row was just created (or claimed, which
        #: clears the request) by this writer, so its first refresh skips reading it back.
        self._cancel_unasked = True
        self._lock = threading.Lock()
        #: The run's CancelToken, cancelled when another process requests it (request_cancel).
        self.cancel: Any = None

    # -- writing -----------------------------------------------------------------------------

    def first_snapshot(self, kind: str, shared: Any) -> bytes:
        """The framed ``start``/``resume`` snapshot of ``shared`` (full; raises before anything is
        stored when ``shared`` cannot be checkpointed)."""
        self.tracker.diff(shared, everything=True)
        return frame(self._snapshot_text(kind, f'"t":{time.time():.3f}', "", full=True))

    def _snapshot_text(self, kind: str, head: str, delta_text: str, *, full: bool = False) -> str:
        """A snapshot record at ``self.seq``; updates the window (pruning is decided in write)."""
        seq = self.seq
        inline, refs, needed = self.tracker.snapshot(seq, full=full)
        self.window.append((seq, tuple(sorted(needed))))
        kept = ",".join(f"[{s},{to_json(list(n))}]" for s, n in self.window)
        text = f'{{"v":{SCHEMA_VERSION},"k":"{kind}","f":1,{head},"i":{self.writer.steps}{delta_text}'
        text += self.writer.snapshot_fields()
        text += f',"s":{join_encoded(inline)},"r":{join_encoded(refs)},"ks":[{kept}]'
        text += f',"rs":{to_json(sorted(self.retained))}}}'
        return text

    def _prune(self) -> list[tuple[int, int]]:
        """The record ranges to delete now that a snapshot was added to the window."""
        keep = self.keep_snapshots
        if not keep or len(self.window) <= keep:
            return []
        dropped, self.window = self.window[:-keep], self.window[-keep:]
        needed: set[int] = set()
        for _, refs in self.window:
            needed.update(refs)
        low, high = dropped[0][0], self.window[0][0]
        ranges, start = [], low
        for seq in sorted(seq for seq in needed | self.retained if low <= seq < high):
            if start < seq:
                ranges.append((start, seq))
            start = seq + 1
            self.retained.add(seq)
        if start < high:
            ranges.append((start, high))
        for seq in sorted(self.retained):
            if seq not in needed:
                self.retained.discard(seq)
                if seq < low:
                    ranges.append((seq, seq + 1))
        return ranges

    def write(
        self,
        record: bytes,
        *,
        snapshot: bool = False,
        changes: Mapping[str, Any] | None = None,
        refresh: bool = False,
        ending: bool = False,
    ) -> None:
        """Append ``record`` as the next record; a snapshot may prune the oldest history.
        ``ending``: the run's last record (a cancel request no longer matters)."""
        seq = self.seq
        prune = self._prune() if snapshot else []
        if changes is None and (refresh or time.monotonic() - self._row_refreshed >= ROW_REFRESH):
            now = time.time()
            changes = {
                "steps": self.writer.steps,
                "updated_at": now,
                "lease_expires_at": now + self.lease_seconds,
            }
        refreshed = changes is not None
        if refreshed:
            self._row_refreshed = time.monotonic()
        self.store.append(self.run_id, seq, record, owner=self.owner, changes=changes, prune=prune)
        if snapshot:
            self.last_snapshot = seq
        self.seq = seq + 1
        if refreshed and not ending and self.cancel is not None and not self.cancel.cancelled:
            if self._cancel_unasked:
                self._cancel_unasked = False  # from the next refresh on, it is read back
            else:
                self._honour_cancel_request()

    def _honour_cancel_request(self) -> None:
        """Cancel the run's token when another process asked for it (checked with each row
        refresh, so within about a second and at no cost per step)."""
        info = self.store.get_run(self.run_id)
        if info is not None and info.cancel_requested:
            self.cancel.cancel(info.cancel_requested)

    def _event(self, kind: str, fields: str, *, refresh: bool = False) -> None:
        text = (
            f'{{"v":{SCHEMA_VERSION},"k":"{kind}","t":{time.time():.3f},"i":{self.writer.steps},'
            f'"ls":{self.last_snapshot},{fields}}}'
        )
        self.write(frame(text), refresh=refresh)

    def _inside_parallel(self, path: tuple[Any, ...]) -> bool:
        """Whether ``path`` runs inside an AsyncParallelBatchGraph, whose param sets interleave."""
        return any(len(path) > len(outer) and path[: len(outer)] == outer for outer in self._parallel)

    def _json_path(self, path: tuple[Any, ...]) -> str:
        """JSON text of a path or position; cached, since loops revisit the same few."""
        text = self._path_texts.get(path)
        if text is None:
            if len(self._path_texts) > 1000:
                self._path_texts.clear()
            text = self._path_texts[path] = to_json(list(path))
        return text

    @staticmethod
    def _delta_text(delta: Delta) -> str:
        text = ""
        if delta.changed:
            text += f',"u":{join_encoded(delta.changed)}'
        if delta.appended:
            text += (
                ',"ap":{'
                + ",".join(
                    f"{key_json(key)}:[{count},[{','.join(items)}]]"
                    for key, (count, items) in delta.appended.items()
                )
                + "}"
            )
        if delta.deleted:
            text += f',"d":{to_json(delta.deleted)}'
        return text

    # -- listener hooks ----------------------------------------------------------------------

    def on_node_start(self, *, node: Any, path: tuple[Any, ...], **kwargs: Any) -> None:
        path = tuple(path)
        if isinstance(node, Graph):
            # What a graph's prep reached stays marked until its post ran (its end step).
            self.tracker.enter(graph=True)
            if isinstance(node, AsyncParallelBatchGraph):
                with self._lock:
                    self._parallel.add(path)
            return
        self.tracker.enter()
        threshold = self.live_threshold
        if threshold is None:
            return
        previous = self._durations.get(path)
        if previous is None or previous >= threshold:
            # Slow (or not seen yet): a dashboard should see it as the current node while it runs.
            with self._lock:
                self._event(
                    "ns", f'"p":{self._json_path(path)},"q":{to_json(kwargs.get("seq"))}', refresh=True
                )

    def on_retry(
        self, *, path: tuple[Any, ...], attempt: int, error: BaseException, wait: float, **kwargs: Any
    ) -> None:
        path = tuple(path)
        with self._lock:
            self._attempts[path] = attempt + 1
            message = to_json(row_text(f"{type(error).__name__}: {error}"))
            self._event(
                "rt",
                f'"p":{self._json_path(path)},"at":{attempt},"w":{float(wait):.3f},"e":{message},'
                f'"q":{to_json(kwargs.get("seq"))}',
            )

    def on_node_error(self, *, node: Any, path: tuple[Any, ...], error: BaseException, **kwargs: Any) -> None:
        self.tracker.leave(graph=isinstance(node, Graph))
        if isinstance(error, (RunLockedError, RunNotFoundError)) and error.run_id == self.run_id:
            return  # this writer lost the run: it writes nothing more
        with self._lock:
            message = to_json(row_text(f"{type(error).__name__}: {error}"))
            attempts = kwargs.get("attempts")
            self._event(
                "ne",
                f'"p":{self._json_path(tuple(path))},"e":{message},"at":{to_json(attempts)},'
                f'"q":{to_json(kwargs.get("seq"))}',
            )

    def on_node_end(
        self,
        *,
        node: Any,
        node_id: str,
        path: tuple[Any, ...],
        shared: Any,
        action: Any,
        duration: float,
        next_node_id: str | None,
        **kwargs: Any,
    ) -> None:
        path = tuple(path)
        self.tracker.leave(graph=isinstance(node, Graph))
        with self._lock:
            if len(self._durations) > 1000:
                self._durations.clear()
            self._durations[path] = duration
            snapshot = self.seq - self.last_snapshot >= self.snapshot_every
            try:
                # A snapshot compares every list item by item (see tracking: the safety net).
                delta = self.tracker.diff(shared, whole_lists=snapshot)
            except SerializationError as exc:
                raise SerializationError(
                    f"run {self.run_id!r} cannot checkpoint after node {node_id!r}: {exc}",
                    run_id=self.run_id,
                    key_path=exc.key_path,
                ) from exc
            writer = self.writer
            writer.steps += 1
            position = None
            if not (self._parallel and self._inside_parallel(path)):
                position = (*path[:-1], next_node_id)
                writer.position = position
                writer.last_action = action if next_node_id is None else None
            writer.forget_items(path)
            # The hot path of every durable run: the record text is assembled directly.
            head = f'"t":{time.time():.3f},"p":{self._json_path(path)},"a":{action_json(action)}'
            head += f',"dt":{duration:.6f}'
            attempts = self._attempts.pop(path, None)
            if attempts:
                head += f',"at":{attempts}'
            seq_text = kwargs.get("seq")
            if seq_text is not None:
                head += f',"q":{int(seq_text)}'
            delta_text = self._delta_text(delta)  # "" when nothing changed
            if snapshot:
                self.write(frame(self._snapshot_text("step", head, delta_text)), snapshot=True)
                return
            if position is not None:
                head += f',"x":{self._json_path(position)}'
            text = (
                f'{{"v":{SCHEMA_VERSION},"k":"step",{head},"i":{writer.steps},"ls":{self.last_snapshot}'
                f"{delta_text}}}"
            )
            self.write(frame(text))

    def on_batch_item_end(
        self,
        *,
        node: Any,
        node_id: str,
        path: tuple[Any, ...],
        index: int,
        result: Any,
        error: BaseException | None,
        **kwargs: Any,
    ) -> None:
        if error is not None:
            return
        text = (
            "null"
            if isinstance(node, Graph)
            else self.serializer.encode(result, f"result of item {index} of node {node_id!r}")
        )
        with self._lock:
            path = tuple(path)
            self.writer.items.setdefault(path, {})[index] = text
            self._event("item", f'"p":{self._json_path(path)},"j":{int(index)},"r":{text}')

    def on_run_end(self, *, shared: Any, action: Any, error: BaseException | None, **kwargs: Any) -> None:
        with self._lock:
            if isinstance(error, (RunLockedError, RunNotFoundError)) and error.run_id == self.run_id:
                # Another writer owns the run now, or it was deleted: touch nothing.
                release(self.store, self.run_id, self.owner, {})
                return
            status = ended_status(error)
            message = None if error is None else row_text(f"{type(error).__name__}: {error}")
            trace = None
            if error is not None and status == "failed":
                trace = row_text("".join(_traceback.format_exception(error)), TRACEBACK_LIMIT)
            try:
                fields: dict[str, Any] = {"t": round(time.time(), 3), "st": status, "e": message, "tb": trace}
                fields.update(i=self.writer.steps, ls=self.last_snapshot, q=kwargs.get("seq"))
                raw = None
                if error is None:
                    # The state after the run, but never a failed node's half-done writes.
                    delta = self.tracker.diff(shared, everything=True)
                    raw = {"a": action_json(action)}
                    delta_text = self._delta_text(delta)
                    text = record_json("end", fields, raw)[:-1] + delta_text + "}"
                else:
                    text = record_json("end", fields, raw)
                self.write(frame(text), changes={}, ending=True)
            except BaseException as exc:
                status, message = "failed", row_text(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                changes: dict[str, Any] = {"status": status, "error": message, "traceback": trace}
                try:
                    now = time.time()
                    changes.update(
                        steps=self.writer.steps,
                        updated_at=now,
                        expires_at=None if not self.ttl else now + self.ttl,
                    )
                finally:
                    release(self.store, self.run_id, self.owner, changes)


__all__ = ["ROW_REFRESH", "Checkpointer", "WriterState", "ended_status", "row_text"]
