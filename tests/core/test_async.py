"""Async nodes and graphs: lifecycle, retries, mixing with sync nodes, bounded concurrency."""

from __future__ import annotations

import asyncio

import pytest

from kaygraph import (
    AsyncBatchGraph,
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    Graph,
    Node,
)


class Fetch(AsyncNode):
    async def prep_async(self, shared):
        return shared["url"]

    async def exec_async(self, url):
        await asyncio.sleep(0)
        return f"<html of {url}>"

    async def post_async(self, shared, prep_res, exec_res):
        shared["page"] = exec_res
        return "parse"


class Parse(Node):
    def prep(self, shared):
        return shared["page"]

    def exec(self, page):
        return len(page)

    def post(self, shared, prep_res, exec_res):
        shared["length"] = exec_res


def test_async_graph_awaits_async_nodes_and_calls_sync_ones():
    fetch = Fetch()
    fetch - "parse" >> Parse()
    shared = {"url": "a.example"}
    assert asyncio.run(AsyncGraph(start=fetch).run_async(shared)) is None
    assert shared == {"url": "a.example", "page": "<html of a.example>", "length": 19}


def test_async_node_alone_and_its_successor_warning():
    node = Fetch()
    shared = {"url": "x"}
    assert asyncio.run(node.run_async(shared)) == "parse"
    node >> Parse()
    with pytest.warns(UserWarning, match="Use AsyncGraph"):
        asyncio.run(node.run_async(shared))


def test_async_retries_wait_and_fallback(monkeypatch):
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    class Flaky(AsyncNode):
        async def exec_async(self, prep_res):
            raise ConnectionError(f"try {self.cur_retry}")

        async def exec_fallback_async(self, prep_res, exc):
            return f"fell back after {exc}"

        async def post_async(self, shared, prep_res, exec_res):
            shared["result"] = exec_res

    shared = {}
    asyncio.run(AsyncGraph(start=Flaky(max_retries=3, wait=0.5)).run_async(shared))
    assert shared["result"] == "fell back after try 2"
    assert slept == [0.5, 0.5]


def test_sync_and_async_nested_graphs_inside_an_async_graph():
    inner_sync = Graph(start=Parse())
    fetch = Fetch()
    fetch - "parse" >> inner_sync
    inner_async = AsyncGraph(start=fetch)
    shared = {"url": "n"}
    asyncio.run(AsyncGraph(start=inner_async).run_async(shared))
    assert shared["length"] == len("<html of n>")


def test_async_batch_node_runs_items_in_order():
    order = []

    class Each(AsyncBatchNode):
        async def prep_async(self, shared):
            return [3, 1, 2]

        async def exec_async(self, item):
            order.append(item)
            return item * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    asyncio.run(AsyncGraph(start=Each()).run_async(shared))
    assert order == [3, 1, 2] and shared["out"] == [6, 2, 4]


def test_async_parallel_batch_node_bounds_concurrency_and_keeps_order():
    state = {"active": 0, "peak": 0}

    class Call(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(30))

        async def exec_async(self, item):
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await asyncio.sleep(0.001 * (30 - item))
            state["active"] -= 1
            return item + 100

        async def post_async(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    asyncio.run(AsyncGraph(start=Call(max_concurrency=4)).run_async(shared))
    assert shared["out"] == [i + 100 for i in range(30)]
    assert state["peak"] == 4


def test_async_parallel_batch_node_unbounded_runs_all_at_once():
    state = {"active": 0, "peak": 0}

    class Call(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(10))

        async def exec_async(self, item):
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await asyncio.sleep(0.01)
            state["active"] -= 1

    asyncio.run(Call().run_async({}))
    assert state["peak"] == 10


class Tag(AsyncNode):
    async def post_async(self, shared, prep_res, exec_res):
        await asyncio.sleep(0.001)
        shared.setdefault("tags", []).append(self.params["tag"])


def test_async_batch_graph_runs_parameter_sets_one_after_another():
    class Sets(AsyncBatchGraph):
        async def prep_async(self, shared):
            return [{"tag": t} for t in "abc"]

    shared = {}
    asyncio.run(Sets(start=Tag()).run_async(shared))
    assert shared["tags"] == ["a", "b", "c"]


def test_async_parallel_batch_graph_bounds_concurrent_parameter_sets():
    state = {"active": 0, "peak": 0}

    class Track(AsyncNode):
        async def exec_async(self, prep_res):
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            await asyncio.sleep(0.005)
            state["active"] -= 1
            return self.params["n"]

        async def post_async(self, shared, prep_res, exec_res):
            shared.setdefault("seen", set()).add(exec_res)

    class Sets(AsyncParallelBatchGraph):
        async def prep_async(self, shared):
            return [{"n": n} for n in range(12)]

    shared = {}
    asyncio.run(Sets(start=Track(), max_concurrency=3).run_async(shared))
    assert shared["seen"] == set(range(12))
    assert state["peak"] == 3


def test_async_graph_cannot_run_synchronously():
    from kaygraph import NodeExecutionError

    with pytest.raises(NodeExecutionError, match="run_async"):
        AsyncGraph(start=Tag()).run({})


def test_async_graph_max_steps_stops_an_endless_loop():
    from kaygraph import GraphExecutionError

    class Spin(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            return "again"

    spin = Spin(node_id="spin")
    spin - "again" >> spin
    with pytest.raises(GraphExecutionError, match="exceeded max_steps=3 when about to run node 'spin'"):
        asyncio.run(AsyncGraph(start=spin, max_steps=3).run_async({}))
