"""Error rules: a node's own exception keeps its type and gains a note naming node and attempts."""

from __future__ import annotations

import asyncio
import traceback

import pytest

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    Graph,
    GraphExecutionError,
    KayGraphError,
    Node,
    NodeExecutionError,
    ValidationError,
)
from kaygraph.core import exceptions


class QuotaExceeded(Exception):
    pass


class CallModel(Node):
    def exec(self, prep_res):
        raise QuotaExceeded("429 from the model API")


def test_user_exception_propagates_with_its_type_and_a_note_naming_node_and_attempts():
    graph = Graph(start=CallModel(max_retries=3, node_id="call_model"), name="chat")
    with pytest.raises(QuotaExceeded) as info:
        graph.run({})
    assert info.value.__notes__ == [
        "KayGraph: node 'call_model' (CallModel) of graph 'chat' failed after 3 attempt(s)"
    ]
    assert info.value.kaygraph_node_id == "call_model"
    rendered = "".join(traceback.format_exception(info.value))
    assert "node 'call_model'" in rendered


def test_failure_in_post_is_named_without_attempts():
    class BadPost(Node):
        def post(self, shared, prep_res, exec_res):
            raise KeyError("answer")

    with pytest.raises(KeyError) as info:
        Graph(start=BadPost(), name="g").run({})
    assert info.value.__notes__ == ["KayGraph: node 'BadPost' (BadPost) of graph 'g' failed"]


def test_nested_failure_is_noted_once_by_the_innermost_graph():
    inner = Graph(start=CallModel(), name="inner")
    with pytest.raises(QuotaExceeded) as info:
        Graph(start=inner, name="outer").run({})
    assert len(info.value.__notes__) == 1
    assert "of graph 'inner'" in info.value.__notes__[0]


def test_async_failure_is_noted_the_same_way():
    class AsyncCall(AsyncNode):
        async def exec_async(self, prep_res):
            raise QuotaExceeded("slow down")

    with pytest.raises(QuotaExceeded) as info:
        asyncio.run(AsyncGraph(start=AsyncCall(max_retries=2), name="agent").run_async({}))
    assert info.value.__notes__ == [
        "KayGraph: node 'AsyncCall' (AsyncCall) of graph 'agent' failed after 2 attempt(s)"
    ]


def test_async_node_run_synchronously_is_a_node_execution_error_that_says_what_to_do():
    class Fetch(AsyncNode):
        pass

    with pytest.raises(NodeExecutionError, match=r"await node.run_async\(shared\)") as info:
        Graph(start=Fetch(node_id="fetch")).run({})
    assert info.value.node_id == "fetch"
    assert isinstance(info.value, RuntimeError)  # PocketFlow raised RuntimeError here


def test_hierarchy_matches_the_spec():
    for cls in (NodeExecutionError, GraphExecutionError, ValidationError):
        assert issubclass(cls, KayGraphError)
    for name in exceptions.__all__:
        assert issubclass(getattr(exceptions, name), KayGraphError)


def test_errors_keep_their_context_as_attributes():
    error = exceptions.ConfigurationError("bad", key="ui.port", value="abc", source="env KAYGRAPH_UI_PORT")
    assert (error.key, error.value, error.source) == ("ui.port", "abc", "env KAYGRAPH_UI_PORT")
    missing = exceptions.MissingExtraError("needs redis", extra="persistence", name="redis")
    assert isinstance(missing, ImportError) and missing.extra == "persistence" and missing.name == "redis"
    not_found = exceptions.RunNotFoundError("no run 'x'", run_id="x")
    assert isinstance(not_found, KeyError) and str(not_found) == "no run 'x'"
