"""Small documented contracts of the core that mutation testing found unpinned: every error names
its owner in full, listeners get every documented argument, helpers keep their promises."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import kaygraph
from kaygraph import (
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchNode,
    CancelToken,
    Graph,
    MetricsNode,
    Node,
)
from kaygraph.core.exceptions import (
    GraphDefinitionError,
    GraphExecutionError,
    InvalidActionError,
    NodeExecutionError,
    call_each,
)


def test_call_each_calls_every_function_and_raises_the_first_error() -> None:
    called: list[str] = []

    def fails(name: str) -> Any:
        def function(**kwargs: Any) -> None:
            called.append(f"{name}{kwargs}")
            raise ValueError(name)

        return function

    with pytest.raises(ValueError, match=r"^first$"):
        call_each([fails("first"), fails("second"), lambda **kwargs: called.append("ok")], {"x": 1})
    assert called == ["first{'x': 1}", "second{'x': 1}", "ok"]
    call_each([lambda: called.append("no kwargs")])
    assert called[-1] == "no kwargs"


def test_bad_counts_and_actions_name_the_class_and_the_setting() -> None:
    with pytest.raises(GraphDefinitionError) as steps:
        Graph(max_steps=0)
    assert str(steps.value) == "Graph: max_steps must be an int >= 1 or None, got 0"
    with pytest.raises(GraphDefinitionError) as concurrency:
        AsyncParallelBatchNode(max_concurrency=0)
    assert (
        str(concurrency.value) == "AsyncParallelBatchNode: max_concurrency must be an int >= 1 or None, got 0"
    )
    with pytest.raises(InvalidActionError) as action:
        Node().next(Node(), 5)  # type: ignore[arg-type]
    assert str(action.value) == (
        'action must be a string, got 5 (int) on Node.next(); write node - "action" >> other'
    )


def test_an_async_parallel_batch_node_passes_positional_settings_on() -> None:
    node = AsyncParallelBatchNode(3, node_id="fan")
    assert node.max_retries == 3


def test_a_graph_without_a_start_node_says_how_to_give_one() -> None:
    with pytest.raises(GraphExecutionError) as caught:
        Graph(name="empty").run({})
    assert str(caught.value) == (
        "graph 'empty' has no start node: pass Graph(start=node) or call graph.start(node) before running it"
    )


def test_an_async_node_run_synchronously_says_how_to_run_it() -> None:
    with pytest.raises(NodeExecutionError) as caught:
        AsyncNode(node_id="fetch").run({})
    assert str(caught.value) == (
        "AsyncNode 'fetch' is async and cannot run synchronously: use `await node.run_async(shared)` or put "
        "it in an AsyncGraph and `await graph.run_async(shared)`"
    )


def test_duplicate_node_ids_warn_in_full() -> None:
    first, second = Node(node_id="same"), Node(node_id="same")
    first >> second
    with pytest.warns(UserWarning) as caught:
        Graph(first, name="twins").run({})
    assert str(caught[0].message) == (
        "graph 'twins' has two nodes with node_id 'same': the run goes on, but durable runs, tracing and the "
        "dashboard need unique ids; give one another node_id"
    )


def test_a_node_config_is_created_once_and_kept() -> None:
    node = Node()
    node.config.set("model", "small")
    assert node.config is node.config and node.config.get("model") == "small"


def test_the_0_3_action_alias_is_optional_str() -> None:
    assert kaygraph.T_Action == (str | None)


def test_metrics_keep_exactly_the_last_n_and_reset_clears_the_totals() -> None:
    node = MetricsNode(keep=2, node_id="measured")
    graph = Graph(node)
    for _ in range(3):
        graph.run({})
    assert len(node.metrics["execution_times"]) == 2
    assert node.get_stats()["total_executions"] == 3
    node.reset_stats()
    assert node.get_stats() == {"status": "no_executions"}
    graph.run({})
    assert node.get_stats()["total_executions"] == 1


def test_a_retry_wait_with_a_live_token_waits_only_the_wait() -> None:
    class Once(Node):
        def exec(self, prep_res: Any) -> Any:
            if self.cur_retry == 0:
                raise ConnectionError("first attempt")
            return "ok"

        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["result"] = exec_res

    shared: dict[str, Any] = {}
    Graph(Once(max_retries=2, wait=0.01)).run(shared, cancel=CancelToken())  # never cancelled
    assert shared == {"result": "ok"}


def test_an_async_run_with_a_token_runs_on_the_callers_shared_store() -> None:
    class Mark(AsyncNode):
        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["marked"] = True

    shared: dict[str, Any] = {}
    asyncio.run(AsyncGraph(Mark()).run_async(shared, cancel=CancelToken()))
    assert shared == {"marked": True}


@pytest.mark.parametrize("method", ["prep", "exec", "post", "exec_fallback"])
def test_an_async_def_lifecycle_method_on_a_sync_node_is_refused_when_run(method: str) -> None:
    async def coroutine(self: Any, *args: Any) -> None:
        return None

    wrong = type("Wrong", (Node,), {method: coroutine})(node_id="wrong")
    with pytest.raises(NodeExecutionError) as caught:
        Graph(wrong).run({})
    assert str(caught.value).startswith(f"Wrong 'wrong' defines `async def {method}`, but a sync Node calls")


class Recorder(kaygraph.RunListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def on_node_error(self, **kwargs: Any) -> None:
        self.calls.append(("node_error", kwargs))

    def on_run_end(self, **kwargs: Any) -> None:
        self.calls.append(("run_end", kwargs))

    def on_batch_item_start(self, **kwargs: Any) -> None:
        self.calls.append(("item_start", kwargs))


def test_listeners_get_the_failed_node_its_duration_and_the_run_end_gets_the_shared_store() -> None:
    class Boom(Node):
        def exec(self, prep_res: Any) -> Any:
            raise RuntimeError("boom")

    boom = Boom(node_id="boom")
    recorder = Recorder()
    shared: dict[str, Any] = {"kept": 1}
    with pytest.raises(RuntimeError):
        Graph(boom).run(shared, listeners=[recorder])
    (error_kwargs,) = [kwargs for name, kwargs in recorder.calls if name == "node_error"]
    assert (
        isinstance(error_kwargs["node"], Boom)
        and error_kwargs["node"].node_id == error_kwargs["node_id"] == "boom"
    )
    assert isinstance(error_kwargs["duration"], float) and error_kwargs["duration"] >= 0
    (end_kwargs,) = [kwargs for name, kwargs in recorder.calls if name == "run_end"]
    assert end_kwargs["shared"] is shared


@pytest.mark.parametrize("parallel", [False, True])
def test_batch_item_listeners_get_each_item(parallel: bool) -> None:
    class Items(kaygraph.ParallelBatchNode if parallel else kaygraph.BatchNode):
        def prep(self, shared: Any) -> Any:
            return ["a", "b"]

    recorder = Recorder()
    Graph(Items(node_id="items")).run({}, listeners=[recorder])
    items = sorted(kwargs["item"] for name, kwargs in recorder.calls if name == "item_start")
    assert items == ["a", "b"]


def test_keep_one_and_a_non_number_wait_are_checked() -> None:
    assert MetricsNode(keep=1).get_stats() == {"status": "no_executions"}
    with pytest.raises(GraphDefinitionError, match="wait"):
        Node(wait="soon")  # type: ignore[arg-type]


def test_a_failure_in_a_nested_graph_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    class Boom(Node):
        def exec(self, prep_res: Any) -> Any:
            raise RuntimeError("deep")

    inner = Graph(Boom(node_id="boom"), node_id="inner")
    with caplog.at_level(logging.WARNING), pytest.raises(RuntimeError):
        Graph(Graph(inner, node_id="middle")).run({})
    failed = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "Failed" in r.getMessage()]
    assert failed == ["Node boom: Failed: deep"]
