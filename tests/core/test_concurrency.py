"""One graph object, many concurrent runs (threads and tasks), no cross-talk between them."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from kaygraph import AsyncGraph, AsyncNode, Graph, Node

pytestmark = pytest.mark.filterwarnings("ignore:Graph ends")


class Accumulate(Node):
    """Keeps per-step state on self between prep and post: must never leak across runs."""

    def prep(self, shared):
        self.owner = shared["owner"]
        self.params_seen = dict(self.params)
        return shared["total"]

    def exec(self, total):
        threading.Event().wait(0.0001)  # give other threads a chance to interleave
        return total + 1

    def post(self, shared, prep_res, exec_res):
        assert self.owner == shared["owner"], "per-step state leaked between runs"
        shared["total"] = exec_res
        shared.setdefault("owners", set()).add(self.owner)
        return "again" if exec_res < 50 else "done"


def test_one_graph_run_from_many_threads_keeps_runs_apart():
    node = Accumulate(max_retries=2)
    node - "again" >> node
    graph = Graph(start=node)
    stores = [{"owner": f"run-{i}", "total": 0} for i in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(graph.run, stores))
    for store in stores:
        assert store["total"] == 50
        assert store["owners"] == {store["owner"]}
    assert not hasattr(node, "owner"), "the template node was mutated by a run"
    assert node.params == {}


def test_one_async_graph_run_from_many_tasks_keeps_runs_apart():
    class Step(AsyncNode):
        async def prep_async(self, shared):
            self.owner = shared["owner"]

        async def exec_async(self, prep_res):
            await asyncio.sleep(0)

        async def post_async(self, shared, prep_res, exec_res):
            assert self.owner == shared["owner"]
            shared["steps"] = shared.get("steps", 0) + 1
            return "again" if shared["steps"] < 20 else "done"

    node = Step()
    node - "again" >> node
    graph = AsyncGraph(start=node)
    stores = [{"owner": i} for i in range(25)]

    async def main():
        await asyncio.gather(*(graph.run_async(store) for store in stores))

    asyncio.run(main())
    assert all(store["steps"] == 20 for store in stores)


def test_params_of_concurrent_runs_do_not_mix():
    seen = []

    class Show(Node):
        def prep(self, shared):
            threading.Event().wait(0.001)
            seen.append((shared["id"], self.params["id"]))

    class PerRun(Graph):
        pass

    def run(i):
        graph = PerRun(start=shared_node)
        graph.set_params({"id": i})
        graph.run({"id": i})

    shared_node = Show()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(run, range(32)))
    assert sorted(seen) == [(i, i) for i in range(32)]
