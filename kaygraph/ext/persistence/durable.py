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
import math
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from kaygraph.core.async_node import AsyncGraph, AsyncParallelBatchGraph
from kaygraph.core.events import ResumePoint, RunListener
from kaygraph.core.exceptions import (
    CheckpointCorruptError,
    ConfigurationError,
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
from .serialization import _Undecodable, get_serializer
from .stores import open_store, setting

_UNSET: Any = object()


def _setting_name(name: str, from_config: bool) -> str:
    return f"persistence.{name}" if from_config else f"durable({name}=...)"


def _checked_number(
    name: str, value: Any, *, from_config: bool = False, allow_zero: bool = False
) -> float | None:
    """``value`` as seconds (None allowed); ConfigurationError naming the setting otherwise."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or (value < 0 if allow_zero else value <= 0)
    ):
        bound = ">= 0 (0 or None: never)" if allow_zero else "> 0"
        raise ConfigurationError(
            f"{_setting_name(name, from_config)} must be a number of seconds {bound}, got {value!r} "
            f"({type(value).__name__}); fix the value before running the graph",
            key=name,
            value=value,
        )
    return value


def _checked_count(
    name: str, value: Any, *, from_config: bool = False, allow_none: bool = False
) -> int | None:
    """``value`` as an int >= 1 (or None when allowed); ConfigurationError naming the setting otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        also = " or None (no limit)" if allow_none else ""
        raise ConfigurationError(
            f"{_setting_name(name, from_config)} must be an int >= 1{also}, got {value!r} "
            f"({type(value).__name__}); fix the value before running the graph",
            key=name,
            value=value,
        )
    return value


def check_serializer(info: RunInfo, serializer: Serializer) -> None:
    """Refuse to decode run ``info`` with a serializer other than the one that wrote it.

    Readers decode only with the serializer they configured (JSON by default), never with the
    one named in the store, which anybody with write access to the store could set to pickle.
    """
    if info.serializer == serializer.name:
        return
    if info.serializer == "pickle":
        how = (
            "If you trust this store (loading a pickle runs code), opt in explicitly: "
            "durable(graph, store, serializer='pickle'), steps(store, run_id, serializer='pickle') "
            "or `kaygraph runs show --serializer pickle`."
        )
    else:
        how = f"Read it with serializer={info.serializer!r}."
    raise PersistenceError(
        f"run {info.run_id!r} was recorded with the {info.serializer!r} serializer, but this reader "
        f"uses {serializer.name!r}; its checkpoints are not decoded with a serializer that did not "
        f"write them. {how}",
        run_id=info.run_id,
    )


def decode_value(serializer: Serializer, data: Any, *, run_id: str, seq: int, key_path: str) -> Any:
    """``serializer.decode(data)`` with errors naming the run, the record and the key path.

    A class this process does not know gives ``SerializationError`` (import its module or
    register it); data the serializer cannot have written gives ``CheckpointCorruptError``.
    """
    try:
        return serializer.decode(data)
    except Exception as exc:
        inner = getattr(exc, "key_path", None) or ""
        where = f"{key_path}{inner}"
        if isinstance(exc, SerializationError) and not isinstance(exc, _Undecodable):
            raise SerializationError(
                f"cannot restore {where} of run {run_id!r} (checkpoint record {seq}): {exc}",
                run_id=run_id,
                key_path=where,
            ) from exc
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} cannot be decoded at {where} "
            f"({type(exc).__name__}: {exc}): the stored data is damaged or was not written by the "
            f"{serializer.name!r} serializer. Delete the run (kaygraph runs delete {run_id}) and "
            "start it again.",
            run_id=run_id,
        ) from exc


def decode_state(
    serializer: Serializer, state: Mapping[str, Any], *, run_id: str, seq: int
) -> dict[str, Any]:
    """The shared store from a folded run state (values in parsed JSON form)."""
    return {
        key: decode_value(serializer, value, run_id=run_id, seq=seq, key_path=f"shared[{key!r}]")
        for key, value in state.items()
    }


def decode_params(serializer: Serializer, params: Any, *, run_id: str, seq: int) -> dict[str, Any] | None:
    """The run's params from a folded run state, or None when the run recorded none."""
    if params is None:
        return None
    value = decode_value(serializer, params, run_id=run_id, seq=seq, key_path="params")
    if not isinstance(value, dict):
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} holds params of type {type(value).__name__}, "
            f"not a dict; delete the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        )
    return value


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
    #: The shared store after this entry (None when read with ``decode=False``).
    state: dict[str, Any] | None
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
        #: The top graph's params, encoded once: they are fixed for the whole run.
        self._params_text: str | None = run_state.params
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
        self.store.append(
            self.run_id, seq, record, owner=self.owner, changes=changes, prune_below=prune_below
        )
        self.seq = seq + 1

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
            run_state.advance(path, changed, deleted, position=position, action=action)
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
            if isinstance(error, (RunLockedError, RunNotFoundError)) and error.run_id == self.run_id:
                # Another writer owns the run now, or it was deleted: touch nothing.
                release(self.store, self.run_id, self.owner, {})
                return
            status = "succeeded" if error is None else "failed"
            message = None if error is None else _row_text(f"{type(error).__name__}: {error}")
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
                status, message = "failed", _row_text(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                changes: dict[str, Any] = {"status": status, "error": message}
                try:
                    now = time.time()
                    changes.update(
                        steps=self.run_state.steps,
                        updated_at=now,
                        expires_at=None if not self.ttl else now + self.ttl,
                    )
                finally:
                    release(self.store, self.run_id, self.owner, changes)


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
        self.ttl: float | None = _checked_number(
            "ttl", setting("ttl") if ttl is _UNSET else ttl, from_config=ttl is _UNSET, allow_zero=True
        )
        self.keep_snapshots: int | None = _checked_count(
            "keep_snapshots",
            setting("keep_snapshots") if keep_snapshots is _UNSET else keep_snapshots,
            from_config=keep_snapshots is _UNSET,
            allow_none=True,
        )
        self.snapshot_every: int = _checked_count("snapshot_every", snapshot_every)  # type: ignore[assignment]
        lease = _checked_number("lease_seconds", lease_seconds)
        if lease is None:
            raise ConfigurationError(
                "durable() lease_seconds must be a number of seconds > 0, got None",
                key="lease_seconds",
                value=None,
            )
        self.lease_seconds: float = lease
        self.serializer = get_serializer(setting("serializer") if serializer is None else serializer)
        if isinstance(graph, AsyncParallelBatchGraph):
            # Its parameter sets run concurrently, so it resumes only as a whole: as a nested
            # level, where the core accepts the finished sets. Same name, same results.
            graph = AsyncGraph(start=graph, name=graph.name)
        self.graph = graph
        self.store = open_store(store)
        self._owns_store = not isinstance(store, CheckpointStore)

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
        run_state = RunState()
        run_state.position = (start.node_id,)
        # The top graph's params are fixed for the run: kept in every snapshot, restored on resume.
        run_state.params = self.serializer.encode(dict(self.graph.params), "params")
        owner = new_owner()
        checkpointer = Checkpointer(self, run_id, owner, run_state)
        try:
            first = checkpointer.snapshot("start", shared)
        except BaseException:
            drop_owner(owner)
            raise
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
        check_serializer(info, self.serializer)
        owner = new_owner()
        if not claim(self.store, info, owner, self.lease_seconds):
            raise RunNotFoundError(f"run {run_id!r} was deleted while resuming it", run_id=run_id)
        try:
            last_seq, stored, snapshot_seqs = latest_state(self.store, run_id)
            shared = decode_state(self.serializer, stored.state, run_id=run_id, seq=last_seq)
            resume_point = self._resume_point(run_id, stored, last_seq)
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

    def _resume_point(self, run_id: str, stored: RunState, seq: int) -> ResumePoint:
        """Where to restart, checked against the current graph so a missing node is named."""
        position = stored.position
        level: Graph = self.graph
        for depth, element in enumerate(position):
            if element is None or type(element) is int:
                continue
            if type(element) is not str:
                raise CheckpointCorruptError(
                    f"checkpoint record {seq} of run {run_id!r} has a malformed position {position!r}; "
                    f"delete the run (kaygraph runs delete {run_id}) and start it again.",
                    run_id=run_id,
                )
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
                index: None
                if value is None
                else decode_value(
                    self.serializer,
                    value,
                    run_id=run_id,
                    seq=seq,
                    key_path=f"result of item {index} of node {position[-1]!r}",
                )
                for index, value in items.items()
            }
            if items
            else None
        )
        params = decode_params(self.serializer, stored.params, run_id=run_id, seq=seq)
        return ResumePoint(position, last_action=stored.last_action, completed_items=completed, params=params)

    def _result(self, checkpointer: Checkpointer, shared: Any, action: Any) -> RunResult:
        return RunResult(
            run_id=checkpointer.run_id,
            status="succeeded",
            action=action,
            shared=shared,
            steps=checkpointer.run_state.steps,
        )

    def _stored_result(self, info: RunInfo) -> RunResult:
        check_serializer(info, self.serializer)
        last_seq, stored, _ = latest_state(self.store, info.run_id)
        shared = decode_state(self.serializer, stored.state, run_id=info.run_id, seq=last_seq)
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


def _row_text(message: str) -> str:
    """Error text fit for a run row: bounded, and lone surrogates (from undecodable file names)
    escaped, since database text columns reject them and the run must still be marked failed."""
    return message[:2000].encode("utf-8", "backslashreplace").decode("utf-8")


def steps(
    store: str | CheckpointStore | None,
    run_id: str,
    *,
    serializer: str | Serializer | None = None,
    decode: bool = True,
) -> list[StepRecord]:
    """The kept history of ``run_id``: start/resume/step/end entries with the shared state after each.

    Batch items are folded into their node's entry. How far back it goes is bounded by
    ``keep_snapshots`` (the oldest entry is the oldest kept snapshot). States are decoded with
    ``serializer`` (default: JSON) only, never with the serializer named in the store: a run
    recorded with another one raises ``PersistenceError`` saying how to opt in. With
    ``decode=False`` states and params are left out (None): listing the steps then needs neither
    the serializer nor the classes stored in the state.
    """
    decoder = get_serializer(serializer)
    with _opened(store) as opened:
        info = get_run(opened, run_id)
        if decode:
            check_serializer(info, decoder)
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
                    state=decode_state(decoder, run_state.state, run_id=run_id, seq=seq) if decode else None,
                    params=decode_params(decoder, run_state.params, run_id=run_id, seq=seq)
                    if decode
                    else None,
                )
            )
        return history


def delete_run(store: str | CheckpointStore | None, run_id: str, *, force: bool = False) -> bool:
    """Erase every trace of ``run_id`` (metadata, checkpoints, index entries); False if absent.

    Refuses with ``RunLockedError`` while a live process is writing the run, unless ``force``.
    """
    with _opened(store) as opened:
        try:
            info = opened.get_run(run_id)
        except CheckpointCorruptError:
            if not force:  # its lease cannot be read: erase it only when told to
                raise
            info = None
        if info is not None and not force and lease_is_live(info):
            raise locked_error(info)
        # Also when the run row is gone: erase any record left behind without one.
        return opened.delete_run(run_id)


__all__ = [
    "Checkpointer",
    "DurableGraph",
    "RunResult",
    "StepRecord",
    "check_serializer",
    "decode_value",
    "delete_run",
    "durable",
    "get_run",
    "list_runs",
    "steps",
]
