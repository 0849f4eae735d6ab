"""Graph: runs nodes one after another, following the edge labelled by each node's action."""

from __future__ import annotations

import os
import warnings

from . import base_node as _base
from . import events as _events
from .base_node import BaseNode
from .engine import drive, drive_nodes, graph_steps, lifecycle, run_steps
from .events import RunContext
from .exceptions import GraphDefinitionError, GraphExecutionError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, TypeVar

    _Graph = TypeVar("_Graph", bound="Graph")

    from .cancel import CancelToken
    from .events import Path, ResumePoint
    from .executor import Executor


class Graph(BaseNode):
    """Nodes connected by labelled edges, run from ``start``; a graph is itself a node, so graphs nest.

    ``run(shared)`` returns the last action. ``max_steps`` stops a run whose loop never ends.
    ``config`` (e.g. a :class:`kaygraph.Config`) is handed to every node whose own is empty.
    Listeners (see :mod:`kaygraph.core.events`) observe a run without changing it. Edit edges with
    ``>>``, ``- "action" >>`` or ``next()``: writing ``node.successors`` directly is not tracked
    by the cached node ids. Every run executes copies of the graph and its nodes, so attributes
    a run sets on ``self`` stay with that run (return results through ``shared``).
    """

    _index: dict[str, BaseNode] = {}
    _ids: dict[int, str] = {}
    _ids_version = -1
    _duplicate_ids: tuple[tuple[str, str], ...] = ()  # (graph name, node id) at any level
    #: The ``"package.module:attr"`` reference this graph was built from by
    #: :func:`kaygraph.load_graph` (None otherwise); durable runs record it to rebuild the graph.
    graph_ref: str | None = None

    def __init__(
        self,
        start: BaseNode | None = None,
        config: Any = None,
        *,
        name: str | None = None,
        node_id: str | None = None,
        max_steps: int | None = None,
    ) -> None:
        super().__init__(node_id=node_id, config=config)
        _base.check_count(type(self).__name__, "max_steps", max_steps)
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
            _assign_ids(self, set())

    def require_unique_ids(self) -> None:
        """Raise GraphDefinitionError if two nodes of one level share an explicit ``node_id``: durable
        runs, tracing and the dashboard tell nodes apart by id (a plain run only warns, as 0.3 did)."""
        self._ensure_ids()
        if self._duplicate_ids:
            graph_name, node_id = self._duplicate_ids[0]
            raise GraphDefinitionError(
                f"graph {graph_name!r} has two nodes with node_id {node_id!r}; node ids must be "
                "unique within a graph to checkpoint, trace or show it: give one of them another node_id"
            )

    def nodes(self) -> dict[str, BaseNode]:
        """The nodes of this level, by id, in graph order (breadth-first from the start node).
        Needs unique ids (see :meth:`require_unique_ids`)."""
        self.require_unique_ids()
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

    # -- running ------------------------------------------------------------------------------

    def get_next_node(self, curr: BaseNode, action: Any) -> BaseNode | None:
        successors = curr.successors
        try:
            nxt = successors.get(action or "default")
        except TypeError:  # unhashable action
            nxt = None
        if nxt is None and successors:
            node_id = self._ids.get(id(curr)) or curr.node_id
            if action is not None and not isinstance(action, str):
                raise GraphExecutionError(
                    f"node {node_id!r} returned {action!r} ({type(action).__name__}) from "
                    f"post(); actions must be strings or None. Its edges are {list(successors)}",
                    graph=self.name,
                    node_id=node_id,
                )
            _graph_ends(self, curr, node_id, action)
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
        runner = self._begin_run(listeners, run_id, resume, cancel, executor)
        if not runner._run_ctx.listeners:  # type: ignore[union-attr]
            return runner._run(shared)
        return drive(run_steps(self, runner, shared, runner._run, (shared,)))

    def _begin_run(
        self: _Graph,
        listeners: Iterable[Any] | None,
        run_id: str | None,
        resume: ResumePoint | None,
        cancel: CancelToken | None = None,
        executor: Executor | None = None,
    ) -> _Graph:
        if self.successors:
            kind = "AsyncGraph" if self._kg_async_hooks else "Graph"
            warnings.warn(f"Node won't run successors. Use {kind}.", stacklevel=3)
        self._ensure_ids()
        if self._duplicate_ids:
            graph_name, node_id = self._duplicate_ids[0]
            warnings.warn(
                f"graph {graph_name!r} has two nodes with node_id {node_id!r}: the run goes on, but "
                "durable runs, tracing and the dashboard need unique ids; give one another node_id",
                stacklevel=3,
            )
        attached = _events.get_listeners()
        if listeners:
            listeners = tuple(listeners)
            for listener in listeners:
                _events.validate_listener(listener)
            # A listener attached globally and for this run is called once, where first attached.
            attached = tuple({id(listener): listener for listener in (*attached, *listeners)}.values())
        runner = self._fresh_copy()
        if cancel is not None and not callable(getattr(cancel, "raise_if_cancelled", None)):
            raise TypeError(f"cancel= must be a kaygraph.CancelToken, got {cancel!r}")
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError(
                f"executor= must have a submit(fn, *args) method returning a Future, got {executor!r}"
            )
        resume_at = None if resume is None else resume.restarted()
        runner._run_ctx = RunContext(
            self, attached, run_id=run_id, resume=resume_at, cancel=cancel, executor=executor
        )
        runner._kg_path = ()
        if resume is not None and resume.params is not None:
            runner.params = dict(resume.params)
        return runner

    def _run(self, shared: Any) -> Any:
        if self._has_hooks:
            return drive(lifecycle(self, shared, self._hooked_prep, self._hooked_exec, self.post))
        prep_res = self._hooked_prep(shared)
        return self.post(shared, prep_res, self._hooked_exec(shared, prep_res))

    def _hooked_exec(self, shared: Any, prep_res: Any) -> Any:
        return self._orch(shared)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res

    def _orch(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        """Run this graph's nodes (see :func:`kaygraph.core.engine.graph_steps`)."""
        return drive_nodes(graph_steps(self, shared, params), shared)

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

    def _too_many_steps(self, curr: BaseNode) -> None:
        node_id = self._ids.get(id(curr)) or curr.node_id
        raise GraphExecutionError(
            f"graph {self.name!r} exceeded max_steps={self.max_steps} when about to run node "
            f"{node_id!r}: it is probably looping. Raise max_steps or make the loop end.",
            graph=self.name,
            node_id=node_id,
        )

_CORE_DIR = os.path.dirname(__file__)  # warnings point at user code, never at the core


def _graph_ends(graph: Graph, node: BaseNode, node_id: str, action: Any) -> None:
    """The "Graph ends" warning (its text is kept: programs filter on it), pointing at the
    ``post`` that returned the action, with a did-you-mean."""
    actions = list(node.successors)
    message = f"Graph ends: '{action}' not found in {actions}"
    if isinstance(action, str):
        import difflib

        close = difflib.get_close_matches(action, actions, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean {close[0]!r}? node {node_id!r} returned {action!r} from post())"
    post = type(node).post_async if node._kg_async_hooks else type(node).post  # type: ignore[attr-defined]
    code = getattr(post, "__code__", None)
    if code is None or code.co_filename.startswith(_CORE_DIR):
        warnings.warn(message, UserWarning, stacklevel=5)
    else:
        warnings.warn_explicit(
            message, UserWarning, code.co_filename, code.co_firstlineno, module=type(node).__module__
        )


def _reachable(graph: Graph) -> list[BaseNode]:
    """Nodes reachable from the start node, breadth-first, edges in the order they were added."""
    order: list[BaseNode] = [] if graph.start_node is None else [graph.start_node]
    seen = {id(node) for node in order}
    for node in order:  # the loop also visits the nodes it appends
        for successor in node.successors.values():
            if id(successor) not in seen:
                seen.add(id(successor))
                order.append(successor)
    return order


def _assign_ids(graph: Graph, visiting: set[int]) -> None:
    """Give every node without an explicit id its class name, de-duplicated in graph order; a
    repeated explicit id, here or below, goes to ``_duplicate_ids`` (the first node keeps the id)."""
    if id(graph) in visiting:
        raise GraphDefinitionError(f"graph {graph.name!r} contains itself")
    visiting.add(id(graph))
    nodes = _reachable(graph)
    duplicates: list[tuple[str, str]] = []
    taken: set[str] = set()
    for node in nodes:
        explicit = node._explicit_id
        if explicit is not None:
            if explicit in taken:
                duplicates.append((graph.name, explicit))
            taken.add(explicit)
    counters: dict[str, int] = {}
    index: dict[str, BaseNode] = {}
    ids: dict[int, str] = {}
    for node in nodes:
        node_id = node._explicit_id
        if node_id is None:
            base = type(node).__name__
            count = counters.get(base, 0) + 1
            while (derived := base if count == 1 else f"{base}_{count}") in taken:
                count += 1
            counters[base] = count
            node_id = derived
            taken.add(node_id)
            if node._kg_in_graph and node._node_id not in (None, node_id):
                node._kg_ambiguous_id = True  # another graph calls it otherwise
            node._node_id = node_id
        node._kg_in_graph = True
        index.setdefault(node_id, node)
        ids[id(node)] = node_id
        if isinstance(node, Graph):
            _assign_ids(node, visiting)
            duplicates.extend(node._duplicate_ids)
    graph._index = index
    graph._ids = ids
    graph._duplicate_ids = tuple(duplicates)
    graph._ids_version = _base._topology_version
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
    for source_id, action, target_id in graph.edges():
        arrow = "-->" if action == "default" else f"-->|{action.replace('|', '/')}|"
        source_path, target_path = (*prefix, source_id), (*prefix, target_id)
        lines.append(f"{indent}{names[source_path]} {arrow} {names[target_path]}")
