"""Graph: runs nodes one after another, following the edge labelled by each node's action."""

from __future__ import annotations

import sys
import time
import warnings
from contextvars import ContextVar

from . import base_node as _base
from . import events as _events
from .base_node import BaseNode, _add_note
from .events import RunContext
from .exceptions import GraphDefinitionError, GraphExecutionError, RunCancelled

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, TypeVar

    _Graph = TypeVar("_Graph", bound="Graph")

    from .cancel import CancelToken
    from .events import Path, ResumePoint
    from .executor import Executor

_UNLIMITED = sys.maxsize

#: (batch graph, path prefix) while a batch graph runs one parameter set: its nodes' paths then
#: pass through the set's index. A context variable, so concurrent sets (tasks) never mix.
_batch_prefix: ContextVar[tuple[object, Path] | None] = ContextVar("kaygraph_batch_prefix", default=None)


class Graph(BaseNode):
    """Nodes connected by labelled edges, run from ``start``; a graph is itself a node, so graphs nest.

    ``run(shared)`` returns the last action. ``max_steps`` stops a run whose loop never ends.
    Listeners (see :mod:`kaygraph.core.events`) observe a run without changing it. Edit edges with
    ``>>``, ``- "action" >>`` or ``next()``: writing ``node.successors`` directly is not tracked
    by the cached node ids. Every run executes copies of the graph and its nodes, so attributes
    a run sets on ``self`` stay with that run (return results through ``shared``).
    """

    _index: dict[str, BaseNode] = {}
    _ids: dict[int, str] = {}
    _ids_version = -1
    #: The ``"package.module:attr"`` reference this graph was built from by
    #: :func:`kaygraph.load_graph` (None otherwise); durable runs record it to rebuild the graph.
    graph_ref: str | None = None

    def __init__(
        self,
        start: BaseNode | None = None,
        *,
        name: str | None = None,
        node_id: str | None = None,
        max_steps: int | None = None,
    ) -> None:
        super().__init__(node_id=node_id)
        if max_steps is not None and (
            not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1
        ):
            raise GraphDefinitionError(
                f"{type(self).__name__}: max_steps must be an int >= 1 or None, got {max_steps!r}"
            )
        self._start_node = start  # a new graph has no cached ids yet: no need to invalidate others
        declared = getattr(type(self), "name", None)
        if name is not None or not (isinstance(declared, str) or hasattr(declared, "__get__")):
            self.name = name or type(self).__name__  # a class-level name (or property) wins
        self.max_steps = max_steps

    @property
    def start_node(self) -> BaseNode | None:
        return self._start_node

    @start_node.setter
    def start_node(self, node: BaseNode | None) -> None:
        self._start_node = node
        _base._topology_changed()

    def start(self, start: BaseNode) -> BaseNode:
        """Set the first node; returns it so ``graph.start(a) >> b`` reads naturally."""
        self.start_node = start
        return start

    # -- structure ----------------------------------------------------------------------------

    @property
    def topology_version(self) -> int:
        """Changes whenever any edge or start node changes; lets listeners cache ``to_mermaid()``."""
        return _base._topology_version

    def _ensure_ids(self) -> None:
        if self._ids_version != _base._topology_version:
            version = _base._topology_version
            _assign_ids(self, set())
            self._ids_version = version

    def nodes(self) -> dict[str, BaseNode]:
        """The nodes of this level, by id, in graph order (breadth-first from the start node)."""
        self._ensure_ids()
        return dict(self._index)

    def edges(self) -> list[tuple[str, str, str]]:
        """``(source_id, action, target_id)`` for every edge of this level."""
        self._ensure_ids()
        return [
            (source_id, action, self._ids[id(target)])
            for source_id, source in self._index.items()
            for action, target in source.successors.items()
        ]

    def walk(self) -> Iterator[tuple[Path, BaseNode]]:
        """Every node with its path, nested graphs included (a nested graph comes before its nodes)."""
        self._ensure_ids()
        yield from _walk(self, ())

    def to_mermaid(self) -> str:
        """The graph as Mermaid flowchart text; nested graphs become subgraphs."""
        self._ensure_ids()
        lines = ["flowchart TD"]
        _mermaid(self, (), lines, "    ", {})
        return "\n".join(lines)

    def __enter__(self: _Graph) -> _Graph:
        """Set up the resources of every node once, then of nested graphs (innermost first) and of
        this graph; if one fails, what was set up is cleaned up again."""
        nodes: list[BaseNode] = []
        graphs: list[BaseNode] = []
        seen: set[int] = set()
        for _, node in self.walk():
            if id(node) not in seen:
                seen.add(id(node))
                (graphs if isinstance(node, Graph) else nodes).append(node)
        opened: list[BaseNode] = []
        try:
            order: list[BaseNode] = [*nodes, *reversed(graphs), self]
            for node in order:
                node.setup_resources()
                opened.append(node)
        except BaseException:
            _clean_up(opened)
            raise
        self._kg_opened = opened
        return self

    def __exit__(self, *exc_info: object) -> None:
        _clean_up(self.__dict__.pop("_kg_opened", []))

    # -- running ------------------------------------------------------------------------------

    def get_next_node(self, curr: BaseNode, action: Any) -> BaseNode | None:
        successors = curr.successors
        try:
            nxt = successors.get(action or "default")
        except TypeError:  # unhashable action
            nxt = None
        if nxt is None and successors:
            if action is not None and not isinstance(action, str):
                node_id = self._ids.get(id(curr)) or curr.node_id
                raise GraphExecutionError(
                    f"node {node_id!r} returned {action!r} ({type(action).__name__}) from "
                    f"post(); actions must be strings or None. Its edges are {list(successors)}",
                    graph=self.name,
                    node_id=node_id,
                )
            warnings.warn(f"Graph ends: '{action}' not found in {list(successors)}", stacklevel=1)
        return nxt

    def run(
        self,
        shared: Any,
        *,
        listeners: Iterable[Any] | None = None,
        run_id: str | None = None,
        resume: ResumePoint | None = None,
        cancel: CancelToken | None = None,
        executor: Executor | None = None,
    ) -> Any:
        """Run the graph on ``shared`` and return the last action.

        ``listeners`` observe this run only; ``run_id`` names it for them; ``resume`` restarts it
        at a checkpointed position (used by the persistence extension). ``cancel`` is a
        :class:`~kaygraph.core.cancel.CancelToken` that stops the run with ``RunCancelled``;
        ``executor`` runs batch items and ``remote = True`` nodes (see :mod:`kaygraph.core.executor`).
        """
        if self.successors:
            warnings.warn("Node won't run successors. Use Graph.", stacklevel=2)
        runner = self._begin_run(listeners, run_id, resume, cancel, executor)
        ctx = runner._run_ctx
        assert ctx is not None
        if not ctx.listeners:
            return runner._run(shared)
        started = time.perf_counter()
        try:
            ctx.emit("on_run_start", graph=self, shared=shared)
            action = runner._run(shared)
        except BaseException as exc:
            self._run_failed(ctx, shared, exc, started)
            raise
        self._run_succeeded(ctx, shared, action, started)
        return action

    def _begin_run(
        self: _Graph,
        listeners: Iterable[Any] | None,
        run_id: str | None,
        resume: ResumePoint | None,
        cancel: CancelToken | None = None,
        executor: Executor | None = None,
    ) -> _Graph:
        self._ensure_ids()
        attached = _events.get_listeners()
        if listeners:
            seen = {id(listener) for listener in attached}
            for listener in listeners:
                _events.validate_listener(listener)
                if id(listener) not in seen:  # attached globally and per run: called once
                    seen.add(id(listener))
                    attached = (*attached, listener)
        runner = self._fresh_copy()
        if cancel is not None and not callable(getattr(cancel, "raise_if_cancelled", None)):
            raise TypeError(f"cancel= must be a kaygraph.CancelToken, got {cancel!r}")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                f"executor= must have a submit(fn, *args) method returning a Future, got {executor!r}"
            )
        runner._run_ctx = RunContext(
            self,
            attached,
            run_id=run_id,
            resume=None if resume is None else resume.restarted(),
            cancel=cancel,
            executor=executor,
        )
        runner._kg_path = ()
        if resume is not None and resume.params is not None:
            runner.params = dict(resume.params)
        return runner

    def _run_succeeded(self, ctx: RunContext, shared: Any, action: Any, started: float) -> None:
        ctx.emit(
            "on_run_end",
            graph=self,
            shared=shared,
            action=action,
            error=None,
            duration=time.perf_counter() - started,
        )

    def _run_failed(self, ctx: RunContext, shared: Any, error: BaseException, started: float) -> None:
        ctx.emit_after_error(
            "on_run_end",
            error,
            graph=self,
            shared=shared,
            action=None,
            error=error,
            duration=time.perf_counter() - started,
        )

    def _run(self, shared: Any) -> Any:
        if self._has_hooks:
            return self._run_with_hooks(shared)
        prep_res = self.prep(shared)
        return self.post(shared, prep_res, self._orch(shared))

    def _hooked_exec(self, shared: Any, prep_res: Any) -> Any:
        return self._orch(shared)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res

    def _orch(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        ctx = self._run_ctx or RunContext(self)
        curr, done_items, resumed_action = self._entry(ctx)
        if curr is None:
            return resumed_action
        merged = params or {**self.params}
        listening = bool(ctx.listeners)
        prefix = self._path_prefix() if listening else ()
        ids = self._ids
        limit = self.max_steps or _UNLIMITED
        cancel = ctx.cancel
        steps = 0
        last_action = None
        while curr is not None:
            steps += 1
            if steps > limit:
                self._too_many_steps(curr)
            if cancel is not None and cancel.cancelled:
                self._stop_cancelled(ctx, curr)
            node = curr._fresh_copy()
            node.set_params(merged)
            node._run_ctx = ctx
            if curr._kg_ambiguous_id:  # a node shared by graphs: tell it its id in this one
                node._node_id = ids.get(id(curr))
            if done_items is not None:
                node._kg_done_items, done_items = done_items, None
            if listening:
                last_action, curr = self._observed_step(
                    node, ids.get(id(curr)) or curr.node_id, shared, merged, prefix
                )
                continue
            try:
                last_action = node._run(shared)
                nxt = self.get_next_node(node, last_action)
            except Exception as exc:
                self._note_failure(exc, node, ids.get(id(curr)) or curr.node_id, ctx)
                raise
            curr = nxt
        return last_action

    def _observed_step(
        self, node: BaseNode, node_id: str, shared: Any, params: dict[str, Any], prefix: Path
    ) -> tuple[Any, BaseNode | None]:
        path, started = self._step_started(node, node_id, shared, params, prefix)
        try:
            action = node._run(shared)
            nxt = self.get_next_node(node, action)
        except BaseException as exc:  # cancellation and Ctrl-C too: listeners must close the step
            self._step_failed(node, path, exc, started)
            raise
        self._step_finished(node, path, shared, params, action, nxt, started)
        return action, nxt

    def _path_prefix(self) -> Path:
        """Where this graph's nodes sit: its own path, plus the parameter-set index in a batch graph."""
        scoped = _batch_prefix.get()
        return scoped[1] if scoped is not None and scoped[0] is self else self._kg_path

    # -- helpers shared with AsyncGraph and the batch graphs -----------------------------------

    def _entry(self, ctx: RunContext) -> tuple[BaseNode | None, dict[int, Any] | None, Any]:
        """The first node of this level; when resuming, the checkpointed one and its finished items."""
        resume = ctx.resume
        if resume is None:
            if self._start_node is None:
                raise GraphExecutionError(
                    f"graph {self.name!r} has no start node: pass Graph(start=node) or call "
                    "graph.start(node) before running it",
                    graph=self.name,
                )
            return self._start_node, None, None
        element, is_last = resume.take()
        if is_last:
            ctx.resume = None
        if element is None:
            if not is_last:
                self._bad_resume(ctx, resume, "None (end of a level) must be the last element")
            return None, None, resume.last_action
        node = self._index.get(element) if isinstance(element, str) else None
        if node is None:
            raise GraphExecutionError(
                f"cannot resume run {ctx.run_id!r} at node {element!r}: graph {self.name!r} has no "
                f"such node (its nodes are {list(self._index)}). The graph changed since the "
                "checkpoint was written; restore the node or start a new run.",
                graph=self.name,
                node_id=str(element),
            )
        if not is_last and not isinstance(node, Graph):
            self._bad_resume(ctx, resume, f"it continues past node {element!r}, which is not a graph")
        return node, (resume.completed_items if is_last else None), None

    def _bad_resume(self, ctx: RunContext, resume: ResumePoint, why: str) -> None:
        raise GraphExecutionError(
            f"cannot resume run {ctx.run_id!r} in graph {self.name!r} at path {list(resume.path)!r}: "
            f"{why}. The checkpoint does not match this graph's structure.",
            graph=self.name,
        )

    def _stop_cancelled(self, ctx: RunContext, curr: BaseNode) -> None:
        from .cancel import cancelled_error

        assert ctx.cancel is not None
        raise cancelled_error(ctx.cancel, self._ids.get(id(curr)) or curr.node_id, ctx.run_id)

    def _too_many_steps(self, curr: BaseNode) -> None:
        node_id = self._ids.get(id(curr)) or curr.node_id
        raise GraphExecutionError(
            f"graph {self.name!r} exceeded max_steps={self.max_steps} when about to run node "
            f"{node_id!r}: it is probably looping. Raise max_steps or make the loop end.",
            graph=self.name,
            node_id=node_id,
        )

    def _note_failure(
        self, exc: BaseException, node: BaseNode, node_id: str, ctx: RunContext | None
    ) -> None:
        """Name the failing node on the exception once per run (innermost graph wins), as a PEP 678 note."""
        if ctx is not None and getattr(exc, "_kaygraph_noted_by", None) is ctx:
            return
        if isinstance(exc, RunCancelled):  # not a failure of the node: the error names it already
            return
        try:
            exc._kaygraph_noted_by = ctx  # type: ignore[attr-defined]
            exc.kaygraph_node_id = node_id  # type: ignore[attr-defined]
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            return
        attempts = _attempts(exc, ctx)
        detail = f" after {attempts} attempt(s)" if attempts else ""
        _add_note(
            exc,
            f"KayGraph: node {node_id!r} ({type(node).__name__}) of graph {self.name!r} "
            f"failed{detail}",
        )

    def _step_started(
        self, node: BaseNode, node_id: str, shared: Any, params: dict[str, Any], prefix: Path
    ) -> tuple[Path, float]:
        path = (*prefix, node_id)
        node._kg_path = path
        node._node_id = node_id
        ctx = node._run_ctx
        assert ctx is not None
        started = time.perf_counter()
        first_error: Exception | None = None
        # RunContext.emit's loop, inlined for the two per-step events: ~1 us per step less with a
        # listener attached (measured with bench/_core_worker.py ... listener).
        run_id = ctx.run_id
        seq = ctx.next_seq()
        for hook in ctx.hooks("on_node_start"):  # all hear the start even if one fails
            try:
                hook(
                    run=ctx,
                    node=node,
                    node_id=node_id,
                    path=path,
                    shared=shared,
                    params=params,
                    run_id=run_id,
                    seq=seq,
                )
            except Exception as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            self._step_failed(node, path, first_error, started)
            raise first_error
        return path, started

    def _step_failed(self, node: BaseNode, path: Path, exc: BaseException, started: float) -> None:
        ctx = node._run_ctx
        assert ctx is not None
        node_id = str(path[-1])
        self._note_failure(exc, node, node_id, ctx)
        ctx.emit_after_error(
            "on_node_error",
            exc,
            node=node,
            node_id=node_id,
            path=path,
            error=exc,
            attempts=_attempts(exc, ctx),
            duration=time.perf_counter() - started,
        )

    def _step_finished(
        self,
        node: BaseNode,
        path: Path,
        shared: Any,
        params: dict[str, Any],
        action: Any,
        nxt: BaseNode | None,
        started: float,
    ) -> None:
        ctx = node._run_ctx
        assert ctx is not None
        hooks = ctx.hooks("on_node_end")
        if not hooks:
            return
        duration = time.perf_counter() - started
        next_node_id = None if nxt is None else (self._ids.get(id(nxt)) or nxt.node_id)
        run_id = ctx.run_id
        seq = ctx.next_seq()
        first_error: Exception | None = None
        for hook in hooks:  # every listener hears the end even if one fails; the first error wins
            try:
                hook(
                    run=ctx,
                    node=node,
                    node_id=path[-1],
                    path=path,
                    shared=shared,
                    params=params,
                    action=action,
                    duration=duration,
                    next_node_id=next_node_id,
                    run_id=run_id,
                    seq=seq,
                )
            except Exception as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error


def _attempts(exc: BaseException, ctx: RunContext | None) -> int | None:
    """How many exec attempts failed in this run before ``exc`` escaped, if it came from exec."""
    if getattr(exc, "_kaygraph_attempts_by", None) is ctx:
        return getattr(exc, "kaygraph_attempts", None)
    return None


def _clean_up(nodes: list[BaseNode]) -> None:
    """Clean up ``nodes`` in reverse order; every one is attempted, the first error is raised."""
    first_error: BaseException | None = None
    for node in reversed(nodes):
        try:
            node.cleanup_resources()
        except BaseException as exc:
            if first_error is None:
                first_error = exc
    if first_error is not None:
        raise first_error


def _reachable(graph: Graph) -> list[BaseNode]:
    """Nodes reachable from the start node, breadth-first, edges in the order they were added."""
    start = graph.start_node
    if start is None:
        return []
    order: list[BaseNode] = [start]
    seen = {id(start)}
    position = 0
    while position < len(order):
        for successor in order[position].successors.values():
            if id(successor) not in seen:
                seen.add(id(successor))
                order.append(successor)
        position += 1
    return order


def _assign_ids(graph: Graph, visiting: set[int]) -> None:
    """Give every node without an explicit id its class name, de-duplicated in graph order."""
    if id(graph) in visiting:
        raise GraphDefinitionError(f"graph {graph.name!r} contains itself")
    visiting.add(id(graph))
    nodes = _reachable(graph)
    taken: set[str] = set()
    for node in nodes:
        explicit = node._explicit_id
        if explicit is not None:
            if explicit in taken:
                raise GraphDefinitionError(
                    f"graph {graph.name!r} has two nodes with node_id {explicit!r}; node ids must be "
                    "unique within a graph"
                )
            taken.add(explicit)
    counters: dict[str, int] = {}
    index: dict[str, BaseNode] = {}
    ids: dict[int, str] = {}
    for node in nodes:
        node_id = node._explicit_id
        if node_id is None:
            base = type(node).__name__
            count = counters.get(base, 0)
            while True:
                count += 1
                node_id = base if count == 1 else f"{base}_{count}"
                if node_id not in taken:
                    break
            counters[base] = count
            taken.add(node_id)
            if node._kg_in_graph and node._node_id not in (None, node_id):
                node._kg_ambiguous_id = True  # another graph calls it otherwise
            node._node_id = node_id
        node._kg_in_graph = True
        index[node_id] = node
        ids[id(node)] = node_id
        if isinstance(node, Graph):
            _assign_ids(node, visiting)
            node._ids_version = _base._topology_version
    graph._index = index
    graph._ids = ids
    visiting.discard(id(graph))


def _walk(graph: Graph, prefix: Path) -> Iterator[tuple[Path, BaseNode]]:
    for node_id, node in graph._index.items():
        path = (*prefix, node_id)
        yield path, node
        if isinstance(node, Graph):
            yield from _walk(node, path)


def _mermaid_label(node_id: str, node: BaseNode) -> str:
    kind = type(node).__name__
    text = node_id if node_id == kind else f"{node_id} ({kind})"
    return '"' + text.replace('"', "#quot;") + '"'


def _mermaid(graph: Graph, prefix: Path, lines: list[str], indent: str, names: dict[Path, str]) -> None:
    """Mermaid ids are numbers in walk order (``n0``, ``n1``...): node ids may hold any character."""
    for node_id, node in graph._index.items():
        path = (*prefix, node_id)
        names[path] = f"n{len(names)}"
        if isinstance(node, Graph):
            lines.append(f"{indent}subgraph {names[path]} [{_mermaid_label(node_id, node)}]")
            _mermaid(node, path, lines, indent + "    ", names)
            lines.append(f"{indent}end")
        else:
            lines.append(f"{indent}{names[path]}[{_mermaid_label(node_id, node)}]")
    for node_id, node in graph._index.items():
        for action, target in node.successors.items():
            target_id = graph._ids[id(target)]
            arrow = "-->" if action == "default" else f"-->|{action.replace('|', '/')}|"
            source_path, target_path = (*prefix, node_id), (*prefix, target_id)
            lines.append(f"{indent}{names[source_path]} {arrow} {names[target_path]}")
