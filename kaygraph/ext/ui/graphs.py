"""The graphs a dashboard can show and start: loaded from ``package.module:attr`` references."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ApiError, UIError


class GraphCatalog:
    """Graphs by name (``graph.name``, the name their durable runs are stored under)."""

    def __init__(self, graphs: Iterable[Any] | Mapping[str, Any] = ()) -> None:
        self._graphs: dict[str, Any] = {}
        self._refs: dict[str, str | None] = {}
        items = graphs.items() if isinstance(graphs, Mapping) else ((None, graph) for graph in graphs)
        for name, graph in items:
            self.add(graph, name=name)

    def add(self, graph: Any, *, name: str | None = None) -> str:
        """Register ``graph`` (a Graph or a ``package.module:attr`` reference); returns its name."""
        from kaygraph import Graph

        ref = None
        if isinstance(graph, str):
            ref = graph
            graph = _load(graph)
        if not isinstance(graph, Graph):
            raise UIError(
                f"the dashboard can serve only kaygraph Graphs, got {graph!r} ({type(graph).__name__})"
            )
        name = name or graph.name
        ref = ref or getattr(graph, "graph_ref", None)
        if name in self._graphs and self._graphs[name] is not graph:
            raise UIError(
                f"two graphs are named {name!r} ({self._refs[name] or 'passed in'} and "
                f"{ref or 'passed in'}); "
                "give one another name (Graph(name=...)) so their runs can be told apart"
            )
        self._graphs[name] = graph
        self._refs[name] = ref
        return name

    def names(self) -> list[str]:
        return sorted(self._graphs)

    def __contains__(self, name: object) -> bool:
        return name in self._graphs

    def get(self, name: str) -> Any:
        """The graph called ``name``; ``ApiError`` 404 listing the known ones otherwise."""
        graph = self._graphs.get(name)
        if graph is None:
            import difflib

            close = difflib.get_close_matches(name, self._graphs, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(self.names()) or "none (start the dashboard with --graphs package.module:attr)"
            raise ApiError(
                404, f"no graph named {name!r} is served here.{hint} Graphs: {known}", culprit="graph"
            )
        return graph

    def ref(self, name: str) -> str | None:
        return self._refs.get(name)

    def describe(self, name: str) -> dict[str, Any]:
        """Nodes, labelled edges and Mermaid text of graph ``name`` (top level; nested graphs are nodes
        with their own ``nodes``/``edges``)."""
        graph = self.get(name)
        return {"name": name, "ref": self.ref(name), **_structure(graph), "mermaid": graph.to_mermaid()}

    def summary(self, name: str) -> dict[str, Any]:
        graph = self.get(name)
        return {
            "name": name,
            "ref": self.ref(name),
            "nodes": len(graph.nodes()),
            "async": type(graph).__name__.startswith("Async"),
            "type": type(graph).__name__,
        }


def _structure(graph: Any) -> dict[str, Any]:
    from kaygraph import Graph

    start = graph.start_node
    nodes = []
    for node_id, node in graph.nodes().items():
        entry: dict[str, Any] = {
            "id": node_id,
            "type": type(node).__name__,
            "start": node is start,
            "graph": isinstance(node, Graph),
        }
        if isinstance(node, Graph):
            entry.update(_structure(node))
        nodes.append(entry)
    edges = [
        {"source": source, "action": action, "target": target} for source, action, target in graph.edges()
    ]
    return {"nodes": nodes, "edges": edges}


def _load(ref: str) -> Any:
    from kaygraph import load_graph

    return load_graph(ref)


__all__ = ["GraphCatalog"]
