"""Durable runs: checkpoint a graph after every node, resume it after a crash, read its history.

from kaygraph.ext.persistence import durable

runner = durable(build_graph(), "sqlite:///runs.db")
result = runner.run({"invoice": 42}, run_id="invoice-42")   # killed half-way? then:
result = runner.resume("invoice-42")                         # in a new process
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from kaygraph.core.async_node import AsyncGraph, AsyncParallelBatchGraph
from kaygraph.core.events import ResumePoint, RunListener
from kaygraph.core.exceptions import (
    PersistenceError,
    ResumeError,
    RunLockedError,
    RunNotFoundError,
    SerializationError,
)
from kaygraph.core.graph import Graph

from .abc import CheckpointStore, RunInfo, Serializer
from .base import (
    SCHEMA_VERSION,
    RunState,
    StateTracker,
    action_json,
    claim,
    drop_owner,
    fold,
    frame,
    join_encoded,
    latest_state,
    lease_is_live,
    locked_error,
    new_owner,
    record_json,
    release,
    to_json,
)
from .serialization import get_serializer
from .stores import open_store, setting

_UNSET: Any = object()
#: The run row is refreshed (steps, updated_at, lease expiry) at most this often, in seconds.
_ROW_REFRESH = 1.0


@dataclasses.dataclass
class RunResult:
    """How a durable run ended: its id, status, last action and final shared store."""

    run_id: str
    status: str
    action: Any
    shared: Any
    steps: int
    #: True when the run had already succeeded and nothing ran again.
    already_finished: bool = False


@dataclasses.dataclass
class StepRecord:
    """One entry of a run's history: a node that completed (or the run's start, resume or end)."""

    seq: int
    #: ``start``, ``resume``, ``step`` or ``end``.
    kind: str
    #: Completed nodes so far.
    step: int
    node_id: str | None
    path: tuple[Any, ...]
    action: Any
    #: Position of the next node (ends in None when that level finished).
    next_position: tuple[Any, ...]
    timestamp: float
    duration: float | None
    #: The shared store after this entry.
    state: dict[str, Any]
    params: Any


class Checkpointer(RunListener):
    """The listener that writes a run's checkpoints: one record per completed node or batch item."""

    def __init__(
        self,
        durable_graph: DurableGraph,
        run_id: str,
        owner: str,
        run_state: RunState,
        *,
        next_seq: int = 0,
        snapshot_seqs: list[int] | None = None,
    ) -> None:
        self.store = durable_graph.store
        self.serializer = durable_graph.serializer
        self.snapshot_every = durable_graph.snapshot_every
        self.keep_snapshots = durable_graph.keep_snapshots
        self.lease_seconds = durable_graph.lease_seconds
        self.ttl = durable_graph.ttl
        self.run_id = run_id
        self.owner = owner
        self.run_state = run_state  # values are encoded JSON texts on this side
        self.tracker = StateTracker(self.serializer)
        self.seq = next_seq
        self.snapshot_seqs = list(snapshot_seqs or [])
        self._params_text: str | None = run_state.params
        self._no_params = self.serializer.encode({}, "params")
        self._parallel: set[tuple[Any, ...]] = set()
        self._path_texts: dict[tuple[Any, ...], str] = {}
        self._row_refreshed = time.monotonic()
        self._lock = threading.Lock()

    # -- writing -----------------------------------------------------------------------------

    def snapshot(self, kind: str, shared: Any) -> bytes:
        """The framed ``start``/``resume`` snapshot of ``shared`` (raises before anything is stored)."""
        self.tracker.diff(shared)
        self.run_state.state = dict(self.tracker.encoded)
        fields = {"t": round(time.time(), 3)}
        return frame(record_json(kind, fields, self.run_state.snapshot_fields(self._params_text)))

    def write(self, record: bytes, *, snapshot: bool, changes: Mapping[str, Any] | None = None) -> None:
        """Append ``record`` as the next record; a snapshot may prune the oldest history."""
        seq = self.seq
        prune_below = None
        if snapshot:
            self.snapshot_seqs.append(seq)
            keep = self.keep_snapshots
            if keep and len(self.snapshot_seqs) > keep:
                del self.snapshot_seqs[:-keep]
                prune_below = self.snapshot_seqs[0]
        if changes is None and time.monotonic() - self._row_refreshed >= _ROW_REFRESH:
            now = time.time()
            changes = {
                "steps": self.run_state.steps,
                "updated_at": now,
                "lease_expires_at": now + self.lease_seconds,
            }
        if changes is not None:
            self._row_refreshed = time.monotonic()
        self.store.append(self.run_id, seq, record, changes=changes, prune_below=prune_below)
        self.seq = seq + 1

    def _params(self, params: dict[str, Any]) -> str | None:
        """The encoded params if they changed since the last record, else None."""
        text = self.serializer.encode(params, "params") if params else self._no_params
        if text == self._params_text:
            return None
        self._params_text = text
        return text

    def _inside_parallel(self, path: tuple[Any, ...]) -> bool:
        """Whether ``path`` runs inside an AsyncParallelBatchGraph, whose param sets interleave."""
        return any(len(path) > len(outer) and path[: len(outer)] == outer for outer in self._parallel)

    # -- listener hooks ----------------------------------------------------------------------

    def on_node_start(self, *, node: Any, path: tuple[Any, ...], **kwargs: Any) -> None:
        if isinstance(node, AsyncParallelBatchGraph):
            with self._lock:
                self._parallel.add(tuple(path))

    def on_node_end(
        self,
        *,
        node_id: str,
        path: tuple[Any, ...],
        shared: Any,
        params: dict[str, Any],
        action: Any,
        duration: float,
        next_node_id: str | None,
        **kwargs: Any,
    ) -> None:
        with self._lock:
            try:
                changed, deleted = self.tracker.diff(shared)
                params_text = self._params(params)
            except SerializationError as exc:
                raise SerializationError(
                    f"run {self.run_id!r} cannot checkpoint after node {node_id!r}: {exc}",
                    run_id=self.run_id,
                    key_path=exc.key_path,
                ) from exc
            run_state = self.run_state
            run_state.steps += 1
            position = None
            if not (self._parallel and self._inside_parallel(path)):
                position = (*path[:-1], next_node_id)
            run_state.advance(path, changed, deleted, position=position, action=action, params=params_text)
            # The hot path of every durable run: the record text is assembled directly.
            head = f'"t":{time.time():.3f},"i":{run_state.steps},"p":{self._json_path(path)},'
            head += f'"a":{action_json(action)},"dt":{duration:.6f}'
            if self.seq - self.snapshot_seqs[-1] >= self.snapshot_every:
                raw = run_state.snapshot_fields(self._params_text)
                body = "".join(f',"{key}":{text}' for key, text in raw.items())
                text = f'{{"v":{SCHEMA_VERSION},"k":"step","f":1,{head}{body}}}'
                self.write(frame(text), snapshot=True)
                return
            if position is not None:
                head += f',"x":{self._json_path(position)}'
            if deleted:
                head += f',"d":{to_json(deleted)}'
            if params_text is not None:
                head += f',"m":{params_text}'
            text = f'{{"v":{SCHEMA_VERSION},"k":"step",{head},"u":{join_encoded(changed)}}}'
            self.write(frame(text), snapshot=False)

    def _json_path(self, path: tuple[Any, ...]) -> str:
        """JSON text of a path or position; cached, since loops revisit the same few."""
        text = self._path_texts.get(path)
        if text is None:
            if len(self._path_texts) > 1000:
                self._path_texts.clear()
            text = self._path_texts[path] = to_json(list(path))
        return text

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
            self.run_state.items.setdefault(tuple(path), {})[index] = text
            fields = {"t": round(time.time(), 3), "p": list(path), "j": index}
            self.write(frame(record_json("item", fields, {"r": text})), snapshot=False)

    def on_run_end(self, *, shared: Any, action: Any, error: BaseException | None, **kwargs: Any) -> None:
        with self._lock:
            if isinstance(error, RunLockedError):  # another writer owns the run now: touch nothing
                release(self.store, self.run_id, self.owner, {})
                return
            status = "succeeded" if error is None else "failed"
            message = None if error is None else f"{type(error).__name__}: {error}"[:2000]
            try:
                fields: dict[str, Any] = {"t": round(time.time(), 3), "st": status, "e": message}
                raw = None
                if error is None:
                    # The state after the run, but never a failed node's half-done writes.
                    changed, deleted = self.tracker.diff(shared)
                    fields["d"] = deleted
                    raw = {"a": action_json(action), "u": join_encoded(changed)}
                self.write(frame(record_json("end", fields, raw)), snapshot=False, changes={})
            except BaseException as exc:
                status, message = "failed", f"{type(exc).__name__}: {exc}"[:2000]
                raise
            finally:
                now = time.time()
                release(
                    self.store,
                    self.run_id,
                    self.owner,
                    {
                        "status": status,
                        "error": message,
                        "steps": self.run_state.steps,
                        "updated_at": now,
                        "expires_at": None if not self.ttl else now + self.ttl,
                    },
                )


class DurableGraph:
    """A graph whose runs are checkpointed to ``store`` after every node and can be resumed.

    ``store`` is a :class:`CheckpointStore`, a URL (``sqlite:///runs.db``, ``redis://...``,
    ``postgresql://...``, ``memory://``) or None for the configured one (``persistence.*``,
    default: SQLite file ``.kaygraph/runs.db``). ``ttl`` (seconds, None: forever) erases finished
    runs; ``keep_snapshots`` bounds history per run (None: keep all); a full snapshot is written
    every ``snapshot_every`` records and deltas in between. ``lease_seconds`` is how long another
    host waits before taking over a run whose writer went silent.

    The graph itself is not changed: the same graph object can still run without persistence.
    """

    def __init__(
        self,
        graph: Graph,
        store: str | CheckpointStore | None = None,
        *,
        serializer: str | Serializer | None = None,
        ttl: float | None = _UNSET,
        keep_snapshots: int | None = _UNSET,
        snapshot_every: int = 100,
        lease_seconds: float = 300.0,
    ) -> None:
        if not isinstance(graph, Graph):
            raise PersistenceError(f"durable() needs a kaygraph Graph or AsyncGraph, got {graph!r}")
        if not isinstance(snapshot_every, int) or snapshot_every < 1:
            raise PersistenceError(f"snapshot_every must be an int >= 1, got {snapshot_every!r}")
        self.graph = graph
        self.store = open_store(store)
        self._owns_store = not isinstance(store, CheckpointStore)
        self.serializer = get_serializer(setting("serializer") if serializer is None else serializer)
        self.ttl = setting("ttl") if ttl is _UNSET else ttl
        self.keep_snapshots = setting("keep_snapshots") if keep_snapshots is _UNSET else keep_snapshots
        self.snapshot_every = snapshot_every
        self.lease_seconds = lease_seconds

    @property
    def graph_name(self) -> str:
        return self.graph.name

    def close(self) -> None:
        """Close the store if this object opened it (from a URL or the configuration)."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> DurableGraph:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running -----------------------------------------------------------------------------

    def run(self, shared: Any, *, run_id: str | None = None) -> RunResult:
        """Run the graph on ``shared`` as run ``run_id`` (random if None), checkpointing every node.

        A run id that already succeeded returns its stored result without running anything; one
        that is unfinished must be continued with :meth:`resume` (or deleted).
        """
        self._require_sync("run")
        prepared = self._prepare_run(shared, run_id)
        if isinstance(prepared, RunResult):
            return prepared
        checkpointer, state, resume_point = prepared
        action = self.graph.run(
            state, listeners=[checkpointer], run_id=checkpointer.run_id, resume=resume_point
        )
        return self._result(checkpointer, state, action)

    async def run_async(self, shared: Any, *, run_id: str | None = None) -> RunResult:
        """:meth:`run` for an ``AsyncGraph``."""
        self._require_async("run_async")
        prepared = self._prepare_run(shared, run_id)
        if isinstance(prepared, RunResult):
            return prepared
        checkpointer, state, resume_point = prepared
        action = await self.graph.run_async(  # type: ignore[attr-defined]
            state, listeners=[checkpointer], run_id=checkpointer.run_id, resume=resume_point
        )
        return self._result(checkpointer, state, action)

    def resume(self, run_id: str) -> RunResult:
        """Continue run ``run_id`` after the last checkpointed node; its completed nodes never rerun.

        Works in a new process with the graph rebuilt by your code. A run that already succeeded
        returns its stored result. Raises ``RunLockedError`` while another live process writes it.
        """
        self._require_sync("resume")
        prepared = self._prepare_resume(run_id)
        if isinstance(prepared, RunResult):
            return prepared
        checkpointer, state, resume_point = prepared
        action = self.graph.run(state, listeners=[checkpointer], run_id=run_id, resume=resume_point)
        return self._result(checkpointer, state, action)

    async def resume_async(self, run_id: str) -> RunResult:
        """:meth:`resume` for an ``AsyncGraph``."""
        self._require_async("resume_async")
        prepared = self._prepare_resume(run_id)
        if isinstance(prepared, RunResult):
            return prepared
        checkpointer, state, resume_point = prepared
        action = await self.graph.run_async(  # type: ignore[attr-defined]
            state, listeners=[checkpointer], run_id=run_id, resume=resume_point
        )
        return self._result(checkpointer, state, action)

    def _require_sync(self, method: str) -> None:
        if isinstance(self.graph, AsyncGraph):
            raise PersistenceError(
                f"graph {self.graph_name!r} is an AsyncGraph: use `await runner.{method}_async(...)`"
            )

    def _require_async(self, method: str) -> None:
        if not isinstance(self.graph, AsyncGraph):
            raise PersistenceError(
                f"graph {self.graph_name!r} is synchronous: use runner.{method.removesuffix('_async')}(...)"
            )

    def _prepare_run(
        self, shared: Any, run_id: str | None
    ) -> RunResult | tuple[Checkpointer, Any, ResumePoint | None]:
        self.graph.nodes()  # a graph that cannot run (duplicate node ids...) fails before any lease
        run_id = run_id or _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + os.urandom(4).hex()
        start = self.graph.start_node
        if start is None:
            raise PersistenceError(f"graph {self.graph_name!r} has no start node")
        self.graph.nodes()  # assigns the node ids used in positions
        owner = new_owner()
        run_state = RunState()
        run_state.position = (start.node_id,)
        checkpointer = Checkpointer(self, run_id, owner, run_state)
        first = checkpointer.snapshot("start", shared)
        now = time.time()
        info = RunInfo(
            run_id=run_id,
            graph_name=self.graph_name,
            status="running",
            created_at=now,
            updated_at=now,
            serializer=self.serializer.name,
            lease_owner=owner,
            lease_expires_at=now + self.lease_seconds,
        )
        if not self.store.create_run(info, first):
            drop_owner(owner)
            existing = self.store.get_run(run_id)
            if existing is not None and existing.status == "succeeded":
                return self._stored_result(existing)
            if existing is not None and lease_is_live(existing):
                raise locked_error(existing)
            status = existing.status if existing else "unknown"
            raise ResumeError(
                f"run {run_id!r} already exists (status {status!r}); call resume({run_id!r}) to "
                f"continue it, or delete_run({run_id!r}) to start it over",
                run_id=run_id,
            )
        checkpointer.seq = 1
        checkpointer.snapshot_seqs = [0]
        return checkpointer, shared, None

    def _prepare_resume(self, run_id: str) -> RunResult | tuple[Checkpointer, Any, ResumePoint]:
        self.graph.nodes()  # a graph that cannot run fails before the lease is taken
        info = self.get_run(run_id)
        if info.status == "succeeded":
            return self._stored_result(info)
        if info.serializer != self.serializer.name:
            raise PersistenceError(
                f"run {run_id!r} was written with the {info.serializer!r} serializer; resume it with "
                f"durable(graph, store, serializer={info.serializer!r})",
                run_id=run_id,
            )
        owner = new_owner()
        if not claim(self.store, info, owner, self.lease_seconds):
            raise RunNotFoundError(f"run {run_id!r} was deleted while resuming it", run_id=run_id)
        try:
            last_seq, stored, snapshot_seqs = latest_state(self.store, run_id)
            shared = {key: self.serializer.decode(value) for key, value in stored.state.items()}
            resume_point = self._resume_point(run_id, stored)
            run_state = RunState()
            run_state.position = stored.position
            run_state.last_action = stored.last_action
            run_state.steps = stored.steps
            run_state.params = None if stored.params is None else to_json(stored.params)
            run_state.items = {
                path: {index: to_json(value) for index, value in done.items()}
                for path, done in stored.items.items()
            }
            checkpointer = Checkpointer(
                self, run_id, owner, run_state, next_seq=last_seq + 1, snapshot_seqs=snapshot_seqs
            )
            checkpointer.write(checkpointer.snapshot("resume", shared), snapshot=True)
        except BaseException:
            release(self.store, run_id, owner, {"status": info.status})
            raise
        return checkpointer, shared, resume_point

    def _resume_point(self, run_id: str, stored: RunState) -> ResumePoint:
        """Where to restart, checked against the current graph so a missing node is named."""
        position = stored.position
        level: Graph = self.graph
        for depth, element in enumerate(position):
            if element is None or isinstance(element, int):
                continue
            nodes = level.nodes()
            node = nodes.get(element)
            if node is None:
                where = " > ".join(str(part) for part in position[: depth + 1])
                raise ResumeError(
                    f"cannot resume run {run_id!r}: its next node {element!r} ({where}) is not in graph "
                    f"{level.name!r} any more (its nodes are {list(nodes)}). The graph changed since the "
                    f"checkpoint: restore that node (or give its replacement node_id={element!r}), or "
                    "delete the run and start it again.",
                    run_id=run_id,
                )
            if isinstance(node, Graph):
                level = node
        items = stored.items.get(tuple(position)) if position and position[-1] is not None else None
        completed = (
            # Batch graphs record None per finished parameter set (their results are not kept).
            {
                index: None if value is None else self.serializer.decode(value)
                for index, value in items.items()
            }
            if items
            else None
        )
        return ResumePoint(position, last_action=stored.last_action, completed_items=completed)

    def _result(self, checkpointer: Checkpointer, shared: Any, action: Any) -> RunResult:
        return RunResult(
            run_id=checkpointer.run_id,
            status="succeeded",
            action=action,
            shared=shared,
            steps=checkpointer.run_state.steps,
        )

    def _stored_result(self, info: RunInfo) -> RunResult:
        _, stored, _ = latest_state(self.store, info.run_id)
        shared = {key: self.serializer.decode(value) for key, value in stored.state.items()}
        return RunResult(
            run_id=info.run_id,
            status=info.status,
            action=stored.action,
            shared=shared,
            steps=stored.steps,
            already_finished=True,
        )

    # -- history -----------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        graph_name: str | None = _UNSET,
        status: str | None = None,
        since: float | _dt.datetime | None = None,
        until: float | _dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs of this graph (or of ``graph_name``; None: every graph), newest first."""
        return list_runs(
            self.store,
            graph_name=self.graph_name if graph_name is _UNSET else graph_name,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )

    def get_run(self, run_id: str) -> RunInfo:
        """The metadata of ``run_id``; ``RunNotFoundError`` if there is none."""
        return get_run(self.store, run_id)

    def steps(self, run_id: str) -> list[StepRecord]:
        """The history of ``run_id``: each completed node with the state after it (as far as kept)."""
        return steps(self.store, run_id, serializer=self.serializer)

    def delete_run(self, run_id: str, *, force: bool = False) -> bool:
        """Erase every trace of ``run_id``; see :func:`delete_run`."""
        return delete_run(self.store, run_id, force=force)


#: ``durable(graph, store=None, **options)``: the usual way to make a :class:`DurableGraph`.
durable = DurableGraph


def _timestamp(value: float | _dt.datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, _dt.datetime) else value


@contextlib.contextmanager
def _opened(store: str | CheckpointStore | None) -> Iterator[CheckpointStore]:
    """The store itself, or one opened from a URL / the configuration and closed afterwards."""
    if isinstance(store, CheckpointStore):
        yield store
        return
    opened = open_store(store)
    try:
        yield opened
    finally:
        opened.close()


def list_runs(
    store: str | CheckpointStore | None = None,
    *,
    graph_name: str | None = None,
    status: str | None = None,
    since: float | _dt.datetime | None = None,
    until: float | _dt.datetime | None = None,
    limit: int | None = None,
) -> list[RunInfo]:
    """Runs in ``store`` (default: the configured one), newest first, filtered by graph name, status
    and creation time (``since`` inclusive, ``until`` exclusive; datetimes or epoch seconds)."""
    with _opened(store) as opened:
        return opened.list_runs(
            graph_name=graph_name,
            status=status,
            since=_timestamp(since),
            until=_timestamp(until),
            limit=limit,
        )


def get_run(store: str | CheckpointStore | None, run_id: str) -> RunInfo:
    """The metadata of ``run_id``; ``RunNotFoundError`` naming it if the store has no such run."""
    with _opened(store) as opened:
        info = opened.get_run(run_id)
        if info is None:
            raise RunNotFoundError(
                f"no run {run_id!r} in {opened.describe()}: it never started there, was deleted, "
                "or expired (persistence.ttl)",
                run_id=run_id,
            )
        return info


def steps(
    store: str | CheckpointStore | None, run_id: str, *, serializer: str | Serializer | None = None
) -> list[StepRecord]:
    """The kept history of ``run_id``: start/resume/step/end entries with the shared state after each.

    Batch items are folded into their node's entry. How far back it goes is bounded by
    ``keep_snapshots`` (the oldest entry is the oldest kept snapshot).
    """
    with _opened(store) as opened:
        info = get_run(opened, run_id)
        decoder = get_serializer(serializer or info.serializer)
        history = []
        for seq, record, run_state in fold(opened, run_id):
            kind = record["k"]
            if kind == "item":
                continue
            path = tuple(record.get("p", ()))
            history.append(
                StepRecord(
                    seq=seq,
                    kind=kind,
                    step=run_state.steps,
                    node_id=str(path[-1]) if path else None,
                    path=path,
                    action=record.get("a"),
                    next_position=run_state.position,
                    timestamp=record["t"],
                    duration=record.get("dt"),
                    state={key: decoder.decode(value) for key, value in run_state.state.items()},
                    params=None if run_state.params is None else decoder.decode(run_state.params),
                )
            )
        return history


def delete_run(store: str | CheckpointStore | None, run_id: str, *, force: bool = False) -> bool:
    """Erase every trace of ``run_id`` (metadata, checkpoints, index entries); False if absent.

    Refuses with ``RunLockedError`` while a live process is writing the run, unless ``force``.
    """
    with _opened(store) as opened:
        info = opened.get_run(run_id)
        if info is None:
            return False
        if not force and lease_is_live(info):
            raise locked_error(info)
        return opened.delete_run(run_id)


__all__ = [
    "Checkpointer",
    "DurableGraph",
    "RunResult",
    "StepRecord",
    "delete_run",
    "durable",
    "get_run",
    "list_runs",
    "steps",
]
