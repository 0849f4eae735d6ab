"""Every lifecycle event keeps the documented contract of its fields, in every kind of graph.

A checking listener validates each event as it arrives: ``run`` is the run's one RunContext,
``graph`` the graph that was run, ``shared`` the very store passed in, ``node`` the node whose id
is ``node_id`` and ``path`` ends in that id, ``params`` what the node saw, ``duration`` a plausible
number of seconds, errors the exceptions raised. Scenarios cover nodes, retries, failures, nested
graphs, batch and parallel batch nodes and graphs, sync and async.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import pytest

from kaygraph import (
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    BaseNode,
    BatchGraph,
    BatchNode,
    Graph,
    Node,
    ParallelBatchNode,
    RunListener,
)
from kaygraph.core.events import RunContext


class Checker(RunListener):
    """Collects contract violations (never raises: a hook's error would change the run)."""

    def __init__(self, graph: Any, shared: Any) -> None:
        self.graph, self.shared = graph, shared
        self.problems: list[str] = []
        self.counts: Counter[str] = Counter()
        self.runs: set[int] = set()
        self.lock = threading.Lock()
        self.ends: list[dict[str, Any]] = []

    def check(self, event: str, condition: bool, what: str, fields: dict[str, Any]) -> None:
        if not condition:
            shown = {key: value for key, value in fields.items() if key not in ("shared", "run")}
            self.problems.append(f"{event}: {what} ({shown})")

    def common(self, event: str, fields: dict[str, Any]) -> None:
        with self.lock:
            self.counts[event] += 1
            self.runs.add(id(fields["run"]))
        run = fields["run"]
        self.check(event, isinstance(run, RunContext), "run is the RunContext", fields)
        self.check(event, run.run_id == fields.get("run_id"), "run.run_id matches run_id", fields)
        self.check(event, run.graph is self.graph, "run.graph is the graph that was run", fields)
        if "shared" in fields:
            self.check(event, fields["shared"] is self.shared, "shared is the store passed in", fields)
        if "duration" in fields:
            duration = fields["duration"]
            self.check(
                event, isinstance(duration, float) and 0 <= duration < 60, "duration in seconds", fields
            )
        if "error" in fields and fields["error"] is not None:
            self.check(event, isinstance(fields["error"], BaseException), "error is an exception", fields)

    def node_fields(self, event: str, fields: dict[str, Any]) -> None:
        self.common(event, fields)
        node, node_id, path = fields["node"], fields["node_id"], fields["path"]
        self.check(event, isinstance(node, BaseNode), "node is a node", fields)
        self.check(event, isinstance(node_id, str) and node.node_id == node_id, "node has node_id", fields)
        self.check(
            event, isinstance(path, tuple) and path and path[-1] == node_id, "path ends in node_id", fields
        )
        if "params" in fields:
            self.check(event, fields["params"] == dict(node.params), "params are the node's", fields)

    def on_run_start(self, **fields: Any) -> None:
        self.common("run_start", fields)
        self.check("run_start", fields["graph"] is self.graph, "graph is the graph run", fields)

    def on_run_end(self, **fields: Any) -> None:
        self.common("run_end", fields)
        self.check("run_end", fields["graph"] is self.graph, "graph is the graph run", fields)
        self.ends.append(fields)

    def on_node_start(self, **fields: Any) -> None:
        self.node_fields("node_start", fields)

    def on_node_end(self, **fields: Any) -> None:
        self.node_fields("node_end", fields)
        following = fields["next_node_id"]
        self.check("node_end", following is None or isinstance(following, str), "next_node_id", fields)

    def on_node_error(self, **fields: Any) -> None:
        self.node_fields("node_error", fields)
        self.check("node_error", isinstance(fields["error"], BaseException), "error given", fields)
        attempts = fields["attempts"]
        self.check(
            "node_error",
            attempts is None or (isinstance(attempts, int) and attempts >= 1),
            "attempts",
            fields,
        )

    def on_retry(self, **fields: Any) -> None:
        self.node_fields("retry", fields)
        self.check(
            "retry", isinstance(fields["attempt"], int) and fields["attempt"] >= 1, "attempt >= 1", fields
        )
        self.check("retry", isinstance(fields["error"], BaseException), "error given", fields)
        self.check("retry", fields["wait"] == 0, "wait is the node's", fields)

    def on_batch_item_start(self, **fields: Any) -> None:
        self.node_fields("item_start", fields)
        index, size = fields["index"], fields["size"]
        self.check("item_start", isinstance(index, int) and index >= 0, "index", fields)
        self.check(
            "item_start", size is None or (isinstance(size, int) and 0 <= index < size), "size", fields
        )

    def on_batch_item_end(self, **fields: Any) -> None:
        self.node_fields("item_end", fields)
        self.check("item_end", isinstance(fields["index"], int), "index", fields)
        self.check("item_end", fields["error"] is None or fields["result"] is None, "result or error", fields)


# -- the nodes of the scenarios ------------------------------------------------------------------


class Flaky(Node):
    """Fails its first attempt in every run, then returns its params."""

    def exec(self, prep_res: Any) -> Any:
        if self.cur_retry == 0:
            raise ConnectionError("first attempt")
        return dict(self.params)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared.setdefault("log", []).append(("flaky", exec_res))
        return "next"


class Square(BatchNode):
    def prep(self, shared: Any) -> Any:
        return [1, 2, 3]

    def exec(self, item: int) -> int:
        return item * item


class ParallelSquare(ParallelBatchNode):
    def prep(self, shared: Any) -> Any:
        return [1, 2, 3, 4]

    def exec(self, item: int) -> int:
        return item * item


class AsyncStep(AsyncNode):
    async def exec_async(self, prep_res: Any) -> Any:
        await asyncio.sleep(0)
        if self.cur_retry == 0:
            raise ConnectionError("first attempt")
        return "ok"


class AsyncSquare(AsyncBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return [1, 2]

    async def exec_async(self, item: int) -> int:
        return item * item


class AsyncParallelSquare(AsyncParallelBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return [1, 2, 3]

    async def exec_async(self, item: int) -> int:
        await asyncio.sleep(0)
        return item * item


class Sets(BatchGraph):
    def prep(self, shared: Any) -> Any:
        return [{"doc": "a"}, {"doc": "b"}]


class AsyncSets(AsyncParallelBatchGraph):
    async def prep_async(self, shared: Any) -> Any:
        return [{"doc": "a"}, {"doc": "b"}, {"doc": "c"}]


class Fails(Node):
    def exec(self, prep_res: Any) -> Any:
        raise KeyError("broken")


class AsyncFails(AsyncNode):
    async def exec_async(self, prep_res: Any) -> Any:
        raise KeyError("broken")


def sync_graph() -> Graph:
    flaky = Flaky(max_retries=2, node_id="flaky")
    inner = Graph(start=Square(node_id="square"), node_id="inner")
    (
        flaky - "next"
        >> inner
        >> ParallelSquare(node_id="parallel", max_workers=2)
        >> Sets(start=Flaky(max_retries=2, node_id="per_set"), node_id="sets")
    )
    return Graph(start=flaky, name="sync")


def async_graph() -> AsyncGraph:
    step = AsyncStep(max_retries=2, node_id="step")
    (
        step
        >> AsyncSquare(node_id="square")
        >> AsyncParallelSquare(node_id="parallel")
        >> AsyncSets(start=AsyncStep(max_retries=2, node_id="per_set"), node_id="sets")
    )
    return AsyncGraph(start=step, name="async")


def assert_clean(checker: Checker) -> None:
    assert checker.problems == []
    assert len(checker.runs) == 1  # one RunContext for the whole run, nested and batch levels too


def test_a_sync_run_keeps_the_contract_of_every_event() -> None:
    shared: dict[str, Any] = {}
    graph = sync_graph()
    checker = Checker(graph, shared)
    result = graph.run(shared, listeners=[checker], run_id="sync-1")
    assert_clean(checker)
    assert checker.counts == Counter(
        run_start=1,
        run_end=1,
        node_start=7,  # flaky, inner, square, parallel, sets, and per_set twice
        node_end=7,
        retry=3,  # flaky once, per_set once per parameter set
        item_start=3 + 4 + 2,
        item_end=3 + 4 + 2,
    )
    (end,) = checker.ends
    assert end["error"] is None and end["action"] is result
    assert shared["log"] == [("flaky", {}), ("flaky", {"doc": "a"}), ("flaky", {"doc": "b"})]


def test_an_async_run_keeps_the_contract_of_every_event() -> None:
    shared: dict[str, Any] = {}
    graph = async_graph()
    checker = Checker(graph, shared)
    asyncio.run(graph.run_async(shared, listeners=[checker], run_id="async-1"))
    assert_clean(checker)
    assert checker.counts == Counter(
        run_start=1,
        run_end=1,
        node_start=7,  # step, square, parallel, sets, and per_set three times
        node_end=7,
        retry=4,
        item_start=2 + 3 + 3,
        item_end=2 + 3 + 3,
    )


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_failing_run_keeps_the_contract_and_reports_the_very_error(flavour: str) -> None:
    shared: dict[str, Any] = {}
    if flavour == "sync":
        first = Flaky(max_retries=2, node_id="first")
        first - "next" >> Fails(node_id="fails", max_retries=2)
        graph: Any = Graph(start=first, name="failing")
    else:
        graph = AsyncGraph(start=AsyncFails(node_id="fails", max_retries=2), name="failing")
    checker = Checker(graph, shared)
    errors: list[BaseException] = []

    class ErrorKeeper(RunListener):
        def on_node_error(self, *, error: BaseException, node_id: str, attempts: Any, **kwargs: Any) -> None:
            errors.append(error)
            assert (node_id, attempts) == ("fails", 2)

    with pytest.raises(KeyError, match="broken") as caught:
        if flavour == "sync":
            graph.run(shared, listeners=[checker, ErrorKeeper()], run_id="f-1")
        else:
            asyncio.run(graph.run_async(shared, listeners=[checker, ErrorKeeper()], run_id="f-1"))
    assert_clean(checker)
    assert errors == [caught.value]
    (end,) = checker.ends
    assert end["error"] is caught.value and end["action"] is None
    assert checker.counts["node_error"] == 1 and checker.counts["retry"] == (2 if flavour == "sync" else 1)


def test_next_node_id_names_the_node_that_runs_next() -> None:
    seen: list[tuple[str, Any]] = []

    class Next(RunListener):
        def on_node_end(self, *, node_id: str, next_node_id: Any, action: Any, **kwargs: Any) -> None:
            seen.append((node_id, next_node_id, action))

    graph = sync_graph()
    graph.run({}, listeners=[Next()])
    assert seen[0] == ("flaky", "inner", "next")
    assert ("square", None, None) in seen  # the last node of the nested level
    assert seen[-1] == ("sets", None, None)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_run_end_carries_the_last_action(flavour: str) -> None:
    class Finish(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return "fin"

    class AsyncFinish(AsyncNode):
        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return "fin"

    shared: dict[str, Any] = {}
    graph: Any = Graph(start=Finish()) if flavour == "sync" else AsyncGraph(start=AsyncFinish())
    checker = Checker(graph, shared)
    if flavour == "sync":
        assert graph.run(shared, listeners=[checker]) == "fin"
    else:
        assert asyncio.run(graph.run_async(shared, listeners=[checker])) == "fin"
    assert_clean(checker)
    assert [(end["action"], end["error"]) for end in checker.ends] == [("fin", None)]
