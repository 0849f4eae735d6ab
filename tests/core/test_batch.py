"""BatchNode, ParallelBatchNode (threads) and BatchGraph."""

from __future__ import annotations

import threading
import time

import pytest

from kaygraph import BatchGraph, BatchNode, Graph, GraphDefinitionError, Node, ParallelBatchNode


class Upper(BatchNode):
    def prep(self, shared):
        return shared["words"]

    def exec(self, word):
        return word.upper()

    def post(self, shared, prep_res, exec_res):
        shared["upper"] = exec_res


def test_batch_node_maps_exec_over_items_in_order():
    shared = {"words": ["a", "b", "c"]}
    Graph(start=Upper()).run(shared)
    assert shared["upper"] == ["A", "B", "C"]


def test_batch_node_with_no_items_gives_an_empty_list():
    shared = {"words": None}
    Upper().run(shared)
    assert shared["upper"] == []


def test_batch_node_retries_each_item_separately():
    failures = {"b": 2}

    class Sometimes(BatchNode):
        def prep(self, shared):
            return ["a", "b"]

        def exec(self, item):
            if failures.get(item, 0) > 0:
                failures[item] -= 1
                raise OSError(item)
            return (item, self.cur_retry)

        def post(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    Sometimes(max_retries=3).run(shared)
    assert shared["out"] == [("a", 0), ("b", 2)]


class SlowSquare(ParallelBatchNode):
    active = 0
    peak = 0
    lock = threading.Lock()

    def prep(self, shared):
        return list(range(12))

    def exec(self, item):
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.peak = max(cls.peak, cls.active)
        time.sleep(0.02)
        with cls.lock:
            cls.active -= 1
        return item * item

    def post(self, shared, prep_res, exec_res):
        shared["squares"] = exec_res


def test_parallel_batch_node_keeps_order_and_respects_max_workers():
    SlowSquare.peak = 0
    shared = {}
    Graph(start=SlowSquare(max_workers=3)).run(shared)
    assert shared["squares"] == [i * i for i in range(12)]
    assert SlowSquare.peak == 3


def test_parallel_items_have_their_own_retry_counter():
    attempts = {}
    lock = threading.Lock()

    class Flaky(ParallelBatchNode):
        def prep(self, shared):
            return list(range(8))

        def exec(self, item):
            with lock:
                attempts[item] = attempts.get(item, 0) + 1
                count = attempts[item]
            time.sleep(0.005)
            if item % 2 and count == 1:
                raise OSError("first try fails for odd items")
            return self.cur_retry

        def post(self, shared, prep_res, exec_res):
            shared["retries"] = exec_res

    shared = {}
    Flaky(max_retries=2, max_workers=8).run(shared)
    assert shared["retries"] == [0, 1, 0, 1, 0, 1, 0, 1]


def test_parallel_batch_failure_propagates_and_cancels_pending_items():
    started = []

    class Boom(ParallelBatchNode):
        def prep(self, shared):
            return list(range(50))

        def exec(self, item):
            started.append(item)
            if item == 0:
                raise ValueError("item 0 is bad")
            time.sleep(0.01)
            return item

    with pytest.raises(ValueError, match="item 0 is bad"):
        Graph(start=Boom(max_workers=2)).run({})
    assert len(started) < 50


def test_parallel_batch_rejects_a_bad_worker_count():
    with pytest.raises(GraphDefinitionError, match="max_workers must be an int >= 1"):
        ParallelBatchNode(max_workers=0)


def test_batch_graph_runs_its_graph_once_per_parameter_set_merged_over_params():
    class Visit(Node):
        def post(self, shared, prep_res, exec_res):
            shared.setdefault("visits", []).append(dict(self.params))

    class PerCity(BatchGraph):
        def prep(self, shared):
            return [{"city": "Oslo"}, {"city": "Lima", "unit": "F"}]

        def post(self, shared, prep_res, exec_res):
            shared["sets"] = len(prep_res)
            return "finished"

    graph = PerCity(start=Visit())
    graph.set_params({"unit": "C"})
    shared = {}
    assert graph.run(shared) == "finished"
    assert shared == {
        "visits": [{"unit": "C", "city": "Oslo"}, {"unit": "F", "city": "Lima"}],
        "sets": 2,
    }
