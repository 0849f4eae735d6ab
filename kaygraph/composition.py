"""Graphs as reusable steps of other graphs, with an isolated shared store (KayGraph 0.3's API).

A :class:`SubGraphNode` runs a whole graph on a *copy* of the parent's shared store (or on the
``input_keys`` only) and merges back what it produced (or the ``output_keys`` only), so a tested
sub-workflow cannot trample keys it does not own. To share the store instead, nest the graph
directly: a :class:`~kaygraph.Graph` is itself a node.

    >>> from kaygraph import Graph, Node
    >>> from kaygraph.composition import SubGraphNode
    >>> class Shout(Node):
    ...     def prep(self, shared):
    ...         return shared["text"]
    ...     def exec(self, text):
    ...         return text.upper()
    ...     def post(self, shared, prep_res, exec_res):
    ...         shared["loud"], shared["scratch"] = exec_res, "internal"
    >>> step = SubGraphNode(Graph(start=Shout()), output_keys=["loud"])
    >>> shared = {"text": "hi"}
    >>> Graph(start=step).run(shared)
    >>> shared
    {'text': 'hi', 'loud': 'HI'}

Each run of the inner graph is a run of its own (its listeners see a separate run); the parent
run's cancel token is passed on, so cancelling the parent stops the inner graph too.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from kaygraph.core import BaseNode, Graph
from kaygraph.core.exceptions import GraphDefinitionError

_log = logging.getLogger(__name__)


def _check_graph(owner: str, graph: Any) -> Graph:
    if not isinstance(graph, Graph):
        raise GraphDefinitionError(
            f"{owner} needs a kaygraph.Graph to run, got {graph!r} ({type(graph).__name__}); "
            "wrap a single node as Graph(start=node)"
        )
    return graph


def _check_keys(owner: str, name: str, keys: Iterable[str] | None) -> list[str] | None:
    if keys is None:
        return None
    if isinstance(keys, str):
        raise GraphDefinitionError(f"{owner}: {name} must be a list of keys, got the string {keys!r}")
    return list(keys)


def _run_isolated(node: BaseNode, graph: Graph, shared: dict[str, Any]) -> Any:
    """Run ``graph`` on ``shared`` as its own run, passing on the cancel token of ``node``'s run."""
    ctx = node._run_ctx
    cancel = getattr(ctx, "cancel", None)
    return graph.run(shared) if cancel is None else graph.run(shared, cancel=cancel)


class SubGraphNode(BaseNode):
    """A node that runs ``graph`` on an isolated copy of the shared store.

    ``input_keys``: the keys copied in (default: a deep copy of the whole store; a missing key is
    logged and skipped). ``output_keys``: the keys merged back (default: everything the inner
    graph's store holds at the end). ``post`` returns None, so the parent follows ``"default"``;
    override it to route on the results.
    """

    def __init__(
        self,
        graph: Graph,
        node_id: str | None = None,
        input_keys: Sequence[str] | None = None,
        output_keys: Sequence[str] | None = None,
    ) -> None:
        super().__init__(node_id=node_id)
        owner = type(self).__name__
        self.subgraph = _check_graph(owner, graph)
        self.input_keys = _check_keys(owner, "input_keys", input_keys)
        self.output_keys = _check_keys(owner, "output_keys", output_keys)

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        """The inner graph's store: the ``input_keys`` (shallow, as 0.3) or a deep copy of all."""
        if not self.input_keys:
            return copy.deepcopy(shared)
        selected = {}
        for key in self.input_keys:
            if key in shared:
                selected[key] = shared[key]
            else:
                _log.warning(
                    "%s %r: input key %r is not in the shared store", type(self).__name__, self.node_id, key
                )
        return selected

    def exec(self, prep_res: dict[str, Any]) -> dict[str, Any]:
        """Run the inner graph on ``prep_res`` and return what goes back to the parent."""
        _run_isolated(self, self.subgraph, prep_res)
        return self._outputs(prep_res)

    def _outputs(self, inner: dict[str, Any]) -> dict[str, Any]:
        if not self.output_keys:
            return inner
        outputs = {}
        for key in self.output_keys:
            if key in inner:
                outputs[key] = inner[key]
            else:
                _log.warning(
                    "%s %r: output key %r was not produced by the inner graph",
                    type(self).__name__,
                    self.node_id,
                    key,
                )
        return outputs

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: dict[str, Any]) -> Any:
        """Merge the inner graph's results into the parent's store."""
        shared.update(exec_res)
        return None


class ConditionalSubGraphNode(SubGraphNode):
    """A :class:`SubGraphNode` that runs only when ``shared[condition_key] == condition_value``;
    otherwise it changes nothing and the parent goes on."""

    _SKIP = "_skip"

    def __init__(
        self,
        graph: Graph,
        condition_key: str,
        condition_value: Any = True,
        node_id: str | None = None,
        input_keys: Sequence[str] | None = None,
        output_keys: Sequence[str] | None = None,
    ) -> None:
        super().__init__(graph, node_id, input_keys, output_keys)
        self.condition_key = condition_key
        self.condition_value = condition_value

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        if shared.get(self.condition_key) != self.condition_value:
            _log.info(
                "%s %r skipped: %r is not %r",
                type(self).__name__,
                self.node_id,
                self.condition_key,
                self.condition_value,
            )
            return {self._SKIP: True}
        return super().prep(shared)

    def exec(self, prep_res: dict[str, Any]) -> dict[str, Any]:
        if prep_res.get(self._SKIP):
            return {}
        return super().exec(prep_res)


class ParallelSubGraphNode(BaseNode):
    """Runs several graphs at once (threads), each on its own deep copy of the shared store.

    ``merge_results=True`` merges every graph's final store into the parent's, in the order the
    graphs were given (later ones win on a clash); ``False`` stores them under
    ``shared["parallel_results"]`` as ``{"graph_0": {...}, "graph_1": {...}}``. If a graph fails,
    the others still finish and the first failure (in graph order) is raised. KayGraph 0.3 ran
    them one after another; ``max_workers=1`` does that.
    """

    def __init__(
        self,
        graphs: Sequence[Graph],
        node_id: str | None = None,
        merge_results: bool = True,
        *,
        max_workers: int | None = None,
    ) -> None:
        super().__init__(node_id=node_id)
        owner = type(self).__name__
        if isinstance(graphs, Graph):
            raise GraphDefinitionError(f"{owner} takes a list of graphs, got a single graph {graphs!r}")
        self.graphs = [_check_graph(owner, graph) for graph in graphs]
        self.merge_results = merge_results
        self.max_workers = max_workers

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(shared) if shared else {}

    def exec(self, prep_res: dict[str, Any]) -> dict[str, dict[str, Any]]:
        stores = [copy.deepcopy(prep_res) for _ in self.graphs]
        workers = self.max_workers or len(self.graphs) or 1
        if workers == 1 or len(self.graphs) <= 1:
            for graph, store in zip(self.graphs, stores, strict=True):
                _run_isolated(self, graph, store)
        else:
            from concurrent.futures import ThreadPoolExecutor, wait

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kaygraph-subgraph") as pool:
                futures = [
                    pool.submit(_run_isolated, self, graph, store)
                    for graph, store in zip(self.graphs, stores, strict=True)
                ]
                wait(futures)
            for future in futures:
                future.result()  # the first failure, in graph order
        return {f"graph_{index}": store for index, store in enumerate(stores)}

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: dict[str, dict[str, Any]]) -> Any:
        if self.merge_results:
            for result in exec_res.values():
                shared.update(result)
        else:
            shared["parallel_results"] = exec_res
        return None


class _RunInOrder(BaseNode):
    """The one node of the graph :func:`compose_graphs` builds: runs each graph on the store."""

    def __init__(self, graphs: list[Graph]) -> None:
        super().__init__()
        self.graphs = graphs

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        return shared

    def exec(self, store: dict[str, Any]) -> None:
        for graph in self.graphs:
            _run_isolated(self, graph, store)


def compose_graphs(*graphs: Graph, node_id: str | None = None) -> SubGraphNode:
    """One node that runs ``graphs`` one after another on one isolated copy of the shared store.

    The graphs are not modified (no edges are added between them), so each stays reusable.
    """
    if not graphs:
        raise GraphDefinitionError("compose_graphs() needs at least one graph")
    checked = [_check_graph("compose_graphs()", graph) for graph in graphs]
    if len(checked) == 1:
        return SubGraphNode(checked[0], node_id=node_id)
    return SubGraphNode(Graph(start=_RunInOrder(checked), name="composed"), node_id=node_id)


__all__ = ["ConditionalSubGraphNode", "ParallelSubGraphNode", "SubGraphNode", "compose_graphs"]
