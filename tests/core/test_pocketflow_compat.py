"""PocketFlow code runs unchanged on KayGraph once Flow classes are renamed Graph.

Each scenario is written once against a namespace of classes and run on PocketFlow 0.0.3 (a dev
dependency) and on KayGraph; results, shared stores, warnings and exception types must agree.
"""

from __future__ import annotations

import asyncio
import types
import warnings

import pytest

import kaygraph

pocketflow = pytest.importorskip("pocketflow", reason="pocketflow==0.0.3 is in the dev extra")

RENAMES = {
    "Flow": "Graph",
    "BatchFlow": "BatchGraph",
    "AsyncFlow": "AsyncGraph",
    "AsyncBatchFlow": "AsyncBatchGraph",
    "AsyncParallelBatchFlow": "AsyncParallelBatchGraph",
}
NAMES = [
    "BaseNode", "Node", "BatchNode", "Flow", "BatchFlow", "AsyncNode", "AsyncBatchNode",
    "AsyncParallelBatchNode", "AsyncFlow", "AsyncBatchFlow", "AsyncParallelBatchFlow",
]


def namespace(lib):
    if lib is pocketflow:
        return types.SimpleNamespace(**{name: getattr(pocketflow, name) for name in NAMES})
    return types.SimpleNamespace(**{name: getattr(kaygraph, RENAMES.get(name, name)) for name in NAMES})


def outcome(scenario, lib):
    """(result, shared, warning texts, exception) of running scenario on lib."""
    ns = namespace(lib)
    shared = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, error = scenario(ns, shared), None
        except Exception as exc:  # compared across libraries below
            result, error = None, exc
    texts = [str(w.message).replace("Flow", "Graph") for w in caught]
    return result, shared, texts, error


def scenario_loop_and_branch(ns, shared):
    class Count(ns.Node):
        def prep(self, shared):
            return shared.get("n", 0)

        def exec(self, n):
            return n + 1

        def post(self, shared, prep_res, exec_res):
            shared["n"] = exec_res
            return "more" if exec_res < 5 else "stop"

    class Finish(ns.Node):
        def post(self, shared, prep_res, exec_res):
            shared["finished"] = True
            return "end"

    count = Count()
    count - "more" >> count
    count - "stop" >> Finish()
    return ns.Flow(start=count).run(shared)


def scenario_nested_flows_and_params(ns, shared):
    class Show(ns.Node):
        def post(self, shared, prep_res, exec_res):
            shared.setdefault("params", []).append(dict(self.params))

    inner = ns.Flow(start=Show())
    first = Show()
    first >> inner >> Show()
    outer = ns.Flow(start=first)
    outer.set_params({"k": 1})
    return outer.run(shared)


def scenario_batches(ns, shared):
    class Square(ns.BatchNode):
        def prep(self, shared):
            return [self.params["base"], self.params["base"] + 1]

        def exec(self, x):
            return x * x

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("squares", []).append(exec_res)

    class Bases(ns.BatchFlow):
        def prep(self, shared):
            return [{"base": 1}, {"base": 10}]

    return Bases(start=Square()).run(shared)


def scenario_retry_fallback(ns, shared):
    class Flaky(ns.Node):
        def exec(self, prep_res):
            shared.setdefault("attempts", []).append(self.cur_retry)
            raise ValueError("nope")

        def exec_fallback(self, prep_res, exc):
            return f"fallback: {exc}"

        def post(self, shared, prep_res, exec_res):
            shared["result"] = exec_res

    return ns.Flow(start=Flaky(max_retries=3)).run(shared)


def scenario_unknown_action(ns, shared):
    class Pick(ns.Node):
        def post(self, shared, prep_res, exec_res):
            return "c"

    pick = Pick()
    pick - "a" >> ns.Node()
    pick - "b" >> ns.Node()
    return ns.Flow(start=pick).run(shared)


def scenario_exception_type(ns, shared):
    class Bad(ns.Node):
        def exec(self, prep_res):
            raise LookupError("missing document")

    return ns.Flow(start=Bad(max_retries=2)).run(shared)


def scenario_node_run_with_successors(ns, shared):
    node = ns.Node()
    node >> ns.Node()
    node.next(ns.Node())  # overwrite warning too
    return node.run(shared)


def scenario_async_node_in_sync_flow(ns, shared):
    return ns.Flow(start=ns.AsyncNode()).run(shared)


def scenario_async_everything(ns, shared):
    class Parallel(ns.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [3, 1, 2]

        async def exec_async(self, x):
            await asyncio.sleep(0.001 * x)
            return x * 10

        async def post_async(self, shared, prep_res, exec_res):
            shared["parallel"] = exec_res
            return "next"

    class Sequential(ns.AsyncBatchNode):
        async def prep_async(self, shared):
            return ["x", "y"]

        async def exec_async(self, item):
            return item * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared["sequential"] = exec_res

    class Mark(ns.AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            shared.setdefault("marks", []).append(self.params["m"])

    class SetsInOrder(ns.AsyncBatchFlow):
        async def prep_async(self, shared):
            return [{"m": 1}, {"m": 2}]

    class SetsAtOnce(ns.AsyncParallelBatchFlow):
        async def prep_async(self, shared):
            return [{"m": 3}, {"m": 4}]

    parallel = Parallel()
    parallel - "next" >> Sequential() >> SetsInOrder(start=Mark()) >> SetsAtOnce(start=Mark())

    async def main():
        return await ns.AsyncFlow(start=parallel).run_async(shared)

    result = asyncio.run(main())
    shared["marks"] = sorted(shared["marks"])
    return result


SCENARIOS = [
    scenario_loop_and_branch,
    scenario_nested_flows_and_params,
    scenario_batches,
    scenario_retry_fallback,
    scenario_unknown_action,
    scenario_exception_type,
    scenario_node_run_with_successors,
    scenario_async_node_in_sync_flow,
    scenario_async_everything,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__.removeprefix("scenario_") for s in SCENARIOS])
def test_same_outcome_as_pocketflow(scenario):
    *ours, our_error = outcome(scenario, kaygraph)
    *theirs, their_error = outcome(scenario, pocketflow)
    assert ours == theirs
    # Code that caught PocketFlow's exception must still catch ours (ours may be more specific).
    assert (our_error is None) == (their_error is None)
    if their_error is not None:
        assert isinstance(our_error, type(their_error)), (our_error, their_error)
