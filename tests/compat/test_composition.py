"""SubGraphNode, ConditionalSubGraphNode, ParallelSubGraphNode, compose_graphs (0.3's composition)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kaygraph import (
    AsyncGraph,
    CancelToken,
    ConditionalSubGraphNode,
    Graph,
    Node,
    ParallelSubGraphNode,
    SubGraphNode,
    compose_graphs,
)
from kaygraph.core.exceptions import GraphDefinitionError, RunCancelled


class Add(Node):
    """Adds ``amount`` to shared["value"] and leaves a scratch key behind."""

    def __init__(self, amount: int, **kwargs):
        super().__init__(**kwargs)
        self.amount = amount

    def prep(self, shared):
        return shared.get("value", 0)

    def exec(self, value):
        return value + self.amount

    def post(self, shared, prep_res, exec_res):
        shared["value"] = exec_res
        shared.setdefault("trail", []).append(self.amount)
        shared[f"scratch_{self.amount}"] = True


def inner(amount: int) -> Graph:
    return Graph(start=Add(amount))


def test_subgraph_runs_on_a_deep_copy_and_merges_everything_back() -> None:
    trail = [0]
    shared = {"value": 1, "trail": trail}
    Graph(start=SubGraphNode(inner(10))).run(shared)

    assert shared["value"] == 11 and shared["scratch_10"] is True
    assert shared["trail"] == [0, 10]
    assert trail == [0]  # the parent's list was copied, never mutated in place


def test_input_and_output_keys_limit_what_crosses_the_boundary(caplog: pytest.LogCaptureFixture) -> None:
    node = SubGraphNode(inner(5), input_keys=["value", "absent"], output_keys=["value", "never_made"])
    shared = {"value": 2, "private": "keep out"}
    with caplog.at_level("WARNING", logger="kaygraph.composition"):
        Graph(start=node).run(shared)

    assert shared == {"value": 7, "private": "keep out"}
    assert "input key 'absent'" in caplog.text and "output key 'never_made'" in caplog.text


def test_subgraph_nodes_chain_like_any_node_and_get_stable_ids() -> None:
    first, second = SubGraphNode(inner(1)), SubGraphNode(inner(2), node_id="second")
    first >> second
    graph = Graph(start=first)
    shared = {"value": 0}
    graph.run(shared)

    assert shared["value"] == 3 and list(graph.nodes()) == ["SubGraphNode", "second"]


def test_conditional_subgraph_runs_only_when_the_condition_holds() -> None:
    node = ConditionalSubGraphNode(inner(100), condition_key="enabled", condition_value="yes")
    graph = Graph(start=node)
    skipped, ran = {"value": 1, "enabled": "no"}, {"value": 1, "enabled": "yes"}
    graph.run(skipped)
    graph.run(ran)

    assert skipped == {"value": 1, "enabled": "no"}
    assert ran["value"] == 101


def test_parallel_subgraphs_really_overlap_and_merge_in_graph_order() -> None:
    barrier = threading.Barrier(2, timeout=5)

    class Meet(Node):
        def __init__(self, key, **kwargs):
            super().__init__(**kwargs)
            self.key = key

        def exec(self, prep_res):
            barrier.wait()  # both graphs must be running at once to get past this
            return self.key

        def post(self, shared, prep_res, exec_res):
            shared["who"] = exec_res
            shared[exec_res] = True

    node = ParallelSubGraphNode([Graph(start=Meet("a")), Graph(start=Meet("b"))])
    shared = {"start": 1}
    Graph(start=node).run(shared)

    assert shared == {"start": 1, "who": "b", "a": True, "b": True}


def test_parallel_subgraphs_can_keep_results_apart_and_run_one_by_one() -> None:
    node = ParallelSubGraphNode([inner(1), inner(2)], merge_results=False, max_workers=1)
    shared = {"value": 10}
    Graph(start=node).run(shared)

    results = shared["parallel_results"]
    assert results["graph_0"]["value"] == 11 and results["graph_1"]["value"] == 12
    assert shared["value"] == 10


def test_a_failing_parallel_graph_fails_the_node_after_the_others_finish() -> None:
    finished = []

    class Boom(Node):
        def exec(self, prep_res):
            raise ValueError("boom in graph 0")

    class Slow(Node):
        def exec(self, prep_res):
            time.sleep(0.05)
            finished.append("slow")

    node = ParallelSubGraphNode([Graph(start=Boom()), Graph(start=Slow())])
    with pytest.raises(ValueError, match="boom in graph 0"):
        Graph(start=node).run({})
    assert finished == ["slow"]


def test_compose_graphs_runs_graphs_in_order_without_rewiring_them() -> None:
    first, second = inner(1), inner(2)
    composed = compose_graphs(first, second)
    shared = {"value": 0}
    Graph(start=composed).run(shared)

    assert shared["value"] == 3 and shared["trail"] == [1, 2]
    assert first.start_node.successors == {}  # the user's graphs are untouched
    assert compose_graphs(first).subgraph is first


def test_bad_arguments_are_named() -> None:
    with pytest.raises(GraphDefinitionError, match=r"needs a kaygraph\.Graph to run, got 42"):
        SubGraphNode(42)  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError, match="at least one graph"):
        compose_graphs()
    with pytest.raises(GraphDefinitionError, match="input_keys must be a list of keys"):
        SubGraphNode(inner(1), input_keys="value")
    with pytest.raises(GraphDefinitionError, match="list of graphs, got a single graph"):
        ParallelSubGraphNode(inner(1))  # type: ignore[arg-type]


def test_cancelling_the_parent_run_stops_the_inner_graph() -> None:
    token = CancelToken()

    class CancelInside(Node):
        def post(self, shared, prep_res, exec_res):
            token.cancel("user pressed stop")

    after = Add(1, node_id="after")
    inner_graph = Graph(start=CancelInside())
    inner_graph.start_node >> after
    shared = {"value": 0}
    with pytest.raises(RunCancelled):
        Graph(start=SubGraphNode(inner_graph)).run(shared, cancel=token)
    assert shared["value"] == 0


def test_subgraph_nodes_run_inside_async_graphs() -> None:
    shared = {"value": 0}
    asyncio.run(AsyncGraph(start=SubGraphNode(inner(4))).run_async(shared))
    assert shared["value"] == 4
