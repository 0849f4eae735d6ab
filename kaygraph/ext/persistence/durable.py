"""Durable runs: checkpoint a graph after every node, resume it after a crash.

from kaygraph.ext.persistence import durable

runner = durable(build_graph(), "sqlite:///runs.db")
result = runner.run({"invoice": 42}, run_id="invoice-42")   # killed half-way? then:
result = runner.resume("invoice-42")                         # in a new process

One implementation: :meth:`DurableGraph._begin` prepares a run (new or resumed) and returns a
:class:`_Job`; ``run``, ``run_async``, ``resume`` and ``resume_async`` are drivers of a few lines
that only differ in calling ``graph.run`` or ``await graph.run_async``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from kaygraph.core.async_node import AsyncGraph, AsyncParallelBatchGraph
from kaygraph.core.events import ResumePoint
from kaygraph.core.exceptions import (
    CheckpointCorruptError,
    ConfigurationError,
    PersistenceError,
    ResumeError,
    RunNotFoundError,
)
from kaygraph.core.graph import Graph

from . import history
from .abc import CheckpointStore, RunInfo, Serializer
from .base import check_run_id
from .checkpointer import Checkpointer, WriterState
from .leases import claim, drop_owner, lease_is_live, locked_error, new_owner, release
from .records import RunState
from .serialization import check_serializer, decode_params, decode_state, decode_value, get_serializer
from .stores import open_store, setting
from .tracking import TrackedDict

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


class _Job:
    """A prepared durable run: the state to run on and the ``graph.run`` arguments; used as a
    context manager by the drivers so the caller's ``shared`` dict gets the final state back
    however the run ends."""

    def __init__(
        self,
        checkpointer: Checkpointer | None = None,
        state: Any = None,
        resume: ResumePoint | None = None,
        *,
        result: RunResult | None = None,
        caller_shared: Any = None,
    ) -> None:
        self.checkpointer = checkpointer
        self.state = state
        self.resume = resume
        self.result = result
        self.caller_shared = caller_shared
        self.options: dict[str, Any] = {}

    def configure(self, cancel: Any, executor: Any, listeners: Iterable[Any] | None) -> _Job:
        assert self.checkpointer is not None
        options: dict[str, Any] = {
            # Last: the core sends end events in reverse order, so the checkpointer records a
            # node's or item's end before any other listener sees it (and could stop the driver).
            "listeners": [*(listeners or ()), self.checkpointer],
            "run_id": self.checkpointer.run_id,
            "resume": self.resume,
        }
        # A token of its own when none is given, so request_cancel from another process works.
        if cancel is None:
            from kaygraph import CancelToken

            cancel = CancelToken()
        options["cancel"] = self.checkpointer.cancel = cancel
        if executor is not None:
            options["executor"] = executor
        self.options = options
        return self

    def finish(self, action: Any) -> RunResult:
        assert self.checkpointer is not None
        shared = self.caller_shared
        if shared is None:  # a resumed run: its state was rebuilt here, hand out a plain dict
            self.release()
            shared = dict(dict.items(self.state)) if isinstance(self.state, TrackedDict) else self.state
        return RunResult(
            run_id=self.checkpointer.run_id,
            status="succeeded",
            action=action,
            shared=shared,
            steps=self.checkpointer.writer.steps,
        )

    def __enter__(self) -> _Job:
        return self

    def release(self) -> None:
        """No tracking type stays reachable from the run's state (see StateTracker.release)."""
        if self.checkpointer is not None:
            self.checkpointer.tracker.release(self.state)

    def __exit__(self, *exc_info: object) -> None:
        self.release()
        caller = self.caller_shared
        if caller is not None and caller is not self.state:
            # The graph ran on a TrackedDict copy: hand the caller's dict the final state.
            final = dict(dict.items(self.state))
            caller.clear()
            caller.update(final)


class DurableGraph:
    """A graph whose runs are checkpointed to ``store`` after every node and can be resumed.

    ``store`` is a :class:`CheckpointStore`, a URL (``sqlite:///runs.db``, ``redis://...``,
    ``postgresql://...``, ``memory://``) or None for the configured one (``persistence.*``,
    default: SQLite file ``.kaygraph/runs.db``). ``ttl`` (seconds, None: forever) erases finished
    runs; ``keep_snapshots`` bounds history per run (None: keep all); a snapshot is written every
    ``snapshot_every`` records and deltas in between. ``lease_seconds`` is how long another host
    waits before taking over a run whose writer went silent. ``live_threshold`` (seconds, None:
    never): a ``node_start`` event is written before a node whose previous run took at least this
    long (or that has not run yet), so a dashboard shows the node while it runs.

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
        live_threshold: float | None = 0.005,
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
        self.live_threshold = _checked_number("live_threshold", live_threshold, allow_zero=True)
        self.serializer = get_serializer(setting("serializer") if serializer is None else serializer)
        #: ``package.module:attr`` of the graph when it was made by ``kaygraph.load_graph``.
        self.graph_ref: str | None = getattr(graph, "graph_ref", None)
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

    # -- drivers: the same job, run synchronously or awaited ------------------------------------

    def run(
        self,
        shared: Any,
        *,
        run_id: str | None = None,
        cancel: Any = None,
        executor: Any = None,
        listeners: Iterable[Any] | None = None,
    ) -> RunResult:
        """Run the graph on ``shared`` as run ``run_id`` (random if None), checkpointing every node.

        A run id that already succeeded returns its stored result without running anything; one
        that is unfinished must be continued with :meth:`resume` (or deleted). ``cancel`` (a
        ``kaygraph.CancelToken``), ``executor`` and ``listeners`` are passed to ``graph.run``; a
        cancelled run is recorded as ``cancelled`` and can be resumed.
        """
        job = self._begin("run", lambda: self._prepare_run(shared, run_id), cancel, executor, listeners)
        if job.result is not None:
            return job.result
        with job:
            return job.finish(self.graph.run(job.state, **job.options))

    async def run_async(
        self,
        shared: Any,
        *,
        run_id: str | None = None,
        cancel: Any = None,
        executor: Any = None,
        listeners: Iterable[Any] | None = None,
    ) -> RunResult:
        """:meth:`run` for an ``AsyncGraph``."""
        job = self._begin("run_async", lambda: self._prepare_run(shared, run_id), cancel, executor, listeners)
        if job.result is not None:
            return job.result
        with job:
            return job.finish(await self.graph.run_async(job.state, **job.options))  # type: ignore[attr-defined]

    def resume(
        self, run_id: str, *, cancel: Any = None, executor: Any = None, listeners: Iterable[Any] | None = None
    ) -> RunResult:
        """Continue run ``run_id`` after the last checkpointed node; its completed nodes never rerun.

        Works in a new process with the graph rebuilt by your code. A run that already succeeded
        returns its stored result. Raises ``RunLockedError`` while another live process writes it.
        Cancelled, failed, crashed and forked (``pending``) runs resume the same way.
        """
        job = self._begin("resume", lambda: self._prepare_resume(run_id), cancel, executor, listeners)
        if job.result is not None:
            return job.result
        with job:
            return job.finish(self.graph.run(job.state, **job.options))

    async def resume_async(
        self, run_id: str, *, cancel: Any = None, executor: Any = None, listeners: Iterable[Any] | None = None
    ) -> RunResult:
        """:meth:`resume` for an ``AsyncGraph``."""
        job = self._begin("resume_async", lambda: self._prepare_resume(run_id), cancel, executor, listeners)
        if job.result is not None:
            return job.result
        with job:
            return job.finish(await self.graph.run_async(job.state, **job.options))  # type: ignore[attr-defined]

    def fork(
        self,
        run_id: str,
        *,
        seq: int | None = None,
        step: int | None = None,
        patch: Any = None,
        new_run_id: str | None = None,
    ) -> RunInfo:
        """Store a new ``pending`` run starting from ``run_id``'s state after record ``seq`` / ``step``
        nodes (see :func:`~kaygraph.ext.persistence.fork_run`); run it with :meth:`resume`."""
        return history.fork_run(
            self.store,
            run_id,
            seq=seq,
            step=step,
            patch=patch,
            new_run_id=new_run_id,
            serializer=self.serializer,
        )

    # -- the one implementation ---------------------------------------------------------------

    def _begin(
        self, method: str, prepare: Callable[[], _Job], cancel: Any, executor: Any, listeners: Any
    ) -> _Job:
        wants_async = method.endswith("_async")
        if wants_async != isinstance(self.graph, AsyncGraph):
            if wants_async:
                driver = method.removesuffix("_async")
                raise PersistenceError(f"graph {self.graph_name!r} is synchronous: use runner.{driver}(...)")
            raise PersistenceError(
                f"graph {self.graph_name!r} is an AsyncGraph: use `await runner.{method}_async(...)`"
            )
        job = prepare()
        return job if job.result is not None else job.configure(cancel, executor, listeners)

    def _prepare_run(self, shared: Any, run_id: str | None) -> _Job:
        self.graph.nodes()  # a graph that cannot run (duplicate node ids...) fails before any lease
        if run_id is None:
            run_id = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + os.urandom(4).hex()
        check_run_id(run_id)
        start = self.graph.start_node
        if start is None:
            raise PersistenceError(f"graph {self.graph_name!r} has no start node")
        writer = WriterState()
        writer.position = (start.node_id,)
        # The top graph's params are fixed for the run: kept in every snapshot, restored on resume.
        writer.params_text = self.serializer.encode(dict(self.graph.params), "params")
        owner = new_owner()
        checkpointer = Checkpointer(self, run_id, owner, writer)
        state = TrackedDict(shared) if type(shared) is dict else shared
        if state is not shared:
            checkpointer.tracker.caller = shared
        try:
            first = checkpointer.first_snapshot("start", state)
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
            graph_ref=self.graph_ref,
        )
        if not self.store.create_run(info, first):
            drop_owner(owner)
            existing = self.store.get_run(run_id)
            if existing is not None and existing.status == "succeeded":
                return _Job(result=self._stored_result(existing))
            if existing is not None and lease_is_live(existing):
                raise locked_error(existing)
            status = existing.status if existing else "unknown"
            raise ResumeError(
                f"run {run_id!r} already exists (status {status!r}); call resume({run_id!r}) to "
                f"continue it, or delete_run({run_id!r}) to start it over",
                run_id=run_id,
            )
        checkpointer.seq = 1
        return _Job(checkpointer, state, None, caller_shared=shared if state is not shared else None)

    def _prepare_resume(self, run_id: str) -> _Job:
        self.graph.nodes()  # a graph that cannot run fails before the lease is taken
        info = self.get_run(run_id)
        if info.status == "succeeded":
            return _Job(result=self._stored_result(info))
        check_serializer(info, self.serializer)
        owner = new_owner()
        try:
            claimed = claim(self.store, info, owner, self.lease_seconds)
        except BaseException:  # another live writer has it: this owner never wrote anything
            drop_owner(owner)
            raise
        if not claimed:
            drop_owner(owner)
            raise RunNotFoundError(f"run {run_id!r} was deleted while resuming it", run_id=run_id)
        try:
            last_seq, stored, snapshot = history.fold_to(self.store, run_id)
            shared = TrackedDict(decode_state(self.serializer, stored.state, run_id=run_id, seq=last_seq))
            resume_point = self._resume_point(run_id, stored, last_seq)
            writer = WriterState.resuming(stored)
            checkpointer = Checkpointer(self, run_id, owner, writer)
            checkpointer.seq = last_seq + 1
            checkpointer.window = [(int(seq), tuple(needed)) for seq, needed in snapshot.get("ks", ())]
            checkpointer.retained = set(snapshot.get("rs", ()))
            checkpointer.write(checkpointer.first_snapshot("resume", shared), snapshot=True)
        except BaseException:
            release(self.store, run_id, owner, {"status": info.status})
            raise
        return _Job(checkpointer, shared, resume_point)

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

    def _stored_result(self, info: RunInfo) -> RunResult:
        check_serializer(info, self.serializer)
        last_seq, stored, _ = history.fold_to(self.store, info.run_id)
        shared = decode_state(self.serializer, stored.state, run_id=info.run_id, seq=last_seq)
        return RunResult(
            run_id=info.run_id,
            status=info.status,
            action=stored.action,
            shared=shared,
            steps=stored.steps,
            already_finished=True,
        )

    # -- reading (see kaygraph.ext.persistence.history) ----------------------------------------

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
        return history.list_runs(
            self.store,
            graph_name=self.graph_name if graph_name is _UNSET else graph_name,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )

    def get_run(self, run_id: str) -> RunInfo:
        """The metadata of ``run_id``; ``RunNotFoundError`` if there is none."""
        return history.get_run(self.store, run_id)

    def steps(self, run_id: str) -> list[history.StepRecord]:
        """The history of ``run_id``: each completed node with the state after it (as far as kept)."""
        return history.steps(self.store, run_id, serializer=self.serializer)

    def delete_run(self, run_id: str, *, force: bool = False) -> bool:
        """Erase every trace of ``run_id``; see :func:`~kaygraph.ext.persistence.delete_run`."""
        return history.delete_run(self.store, run_id, force=force)


#: ``durable(graph, store=None, **options)``: the usual way to make a :class:`DurableGraph`.
durable = DurableGraph

__all__ = ["DurableGraph", "RunResult", "durable"]
