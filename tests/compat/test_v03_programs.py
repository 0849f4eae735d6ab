"""Patterns 0.3 programs combine, run end to end (sync and async): the engine's 0.3 API together
with MetricsNode, the execution context and the companion modules."""

from __future__ import annotations

import asyncio
import logging

import pytest

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    BatchNode,
    Config,
    Graph,
    MetricsNode,
    Node,
    ParallelBatchNode,
    SubGraphNode,
)


class Doubler(BatchNode, MetricsNode):
    """0.3's cooperative multiple inheritance: the batch behaviour plus metrics."""

    def __init__(self, factor=2, *args, **kwargs):
        super().__init__(collect_metrics=True, *args, **kwargs)  # noqa: B026 (0.3 programs write this)
        self.factor = factor

    def prep(self, shared):
        return shared["items"]

    def exec(self, item):
        return item * self.factor * self.config.get("scale", 1)

    def post(self, shared, prep_res, exec_res):
        shared["doubled"] = exec_res


class ParallelDoubler(ParallelBatchNode, MetricsNode):
    def __init__(self, max_workers=None, *args, **kwargs):
        super().__init__(max_workers=max_workers, collect_metrics=True, *args, **kwargs)  # noqa: B026

    def prep(self, shared):
        return shared["items"]

    def exec(self, item):
        return item * 2

    def post(self, shared, prep_res, exec_res):
        shared["parallel"] = exec_res


def test_metrics_batch_nodes_built_by_cooperative_init_collect_stats_and_read_config() -> None:
    sequential = Doubler(3, node_id="seq")
    parallel = ParallelDoubler(4, node_id="par")
    sequential >> parallel
    shared = {"items": [1, 2, 3]}
    Graph(sequential, config=Config(scale=10)).run(shared)

    assert shared["doubled"] == [30, 60, 90] and shared["parallel"] == [2, 4, 6]
    assert parallel.max_workers == 4 and sequential.collect_metrics and parallel.collect_metrics
    assert sequential.get_stats()["total_executions"] == parallel.get_stats()["total_executions"] == 1


def test_with_graph_sets_up_the_graph_own_resources_as_0_3_did() -> None:
    calls = []

    class Pool(Graph):
        def setup_resources(self):
            calls.append("graph setup")

        def cleanup_resources(self):
            calls.append("graph cleanup")

    class Worker(Node):
        def setup_resources(self):
            calls.append("node setup")

        def post(self, shared, prep_res, exec_res):
            calls.append("ran")

    graph = Pool(Worker())
    with graph as entered:
        assert entered is graph
        graph.run({})
    assert calls == ["graph setup", "ran", "graph cleanup"]


def test_a_graph_level_context_value_set_on_template_nodes_is_seen_in_their_steps() -> None:
    class Reader(Node):
        def exec(self, prep_res):
            return self.get_context("pool")

        def post(self, shared, prep_res, exec_res):
            shared["pool"] = exec_res

    reader = Reader()
    reader.set_context("pool", "connection-pool")  # what 0.3 resource-management programs do
    shared = {}
    Graph(reader).run(shared)
    assert shared["pool"] == "connection-pool"


def test_config_reaches_nodes_of_a_subgraph_only_through_its_own_graph() -> None:
    class Tell(Node):
        def post(self, shared, prep_res, exec_res):
            shared["model"] = self.config.get("model", "none")

    inner = Graph(Tell(), config=Config(model="inner"))
    shared = {}
    Graph(SubGraphNode(inner), config=Config(model="outer")).run(shared)
    assert shared["model"] == "inner"


def test_node_logger_and_suppressed_errors_in_an_async_graph(caplog: pytest.LogCaptureFixture) -> None:
    class Flaky(AsyncNode):
        async def exec_async(self, prep_res):
            raise ConnectionError("service down")

        def on_error(self, shared, error):
            self.logger.warning("handled %s", error)
            shared["handled"] = True
            return True

    class After(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            shared["after"] = True

    first = Flaky()
    first >> After()
    shared = {}
    with caplog.at_level(logging.WARNING):
        asyncio.run(AsyncGraph(first).run_async(shared))
    assert shared == {"handled": True, "after": True}
    assert "handled service down" in caplog.text and first.logger.name == "Flaky"
