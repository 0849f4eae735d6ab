"""Mistakes caught when a node class is created (or first run), with messages that name them."""

from __future__ import annotations

import asyncio
import warnings

import pytest

from kaygraph import AsyncGraph, AsyncNode, Graph, Node, NodeExecutionError


def created_warnings(build):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build()
    return caught


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("exce", "exec"), ("psot", "post"), ("prep_asnyc", "prep_async"), ("on_errors", "on_error")],
)
def test_a_near_miss_lifecycle_name_warns_once_at_class_creation_pointing_at_the_method(typo, meant):
    def build():
        def method(self, *args):
            return None

        base = AsyncNode if typo.endswith("asnyc") else Node
        return type("Misspelt", (base,), {typo: method, "__module__": "user_code"})

    caught = created_warnings(build)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert message.startswith(f"Misspelt.{typo} looks like a misspelling of the lifecycle method {meant!r}")
    assert f"KayGraph never calls {typo!r}" in message
    assert caught[0].filename == __file__  # the user's method, not kaygraph/core


def test_helper_methods_and_framework_overrides_do_not_warn():
    def build():
        class Fine(Node):
            def call_llm(self, prompt):
                return prompt

            def format_prompt(self, text):
                return text

            def set_params(self, params):  # a framework method, overridden on purpose
                super().set_params(params)

            def exec(self, prep_res):
                return prep_res

    assert created_warnings(build) == []


def test_async_exec_on_a_plain_node_fails_clearly_naming_the_node():
    class Fetch(Node):
        async def exec(self, prep_res):
            return "page"

    with pytest.raises(NodeExecutionError) as info:
        Graph(start=Fetch(node_id="fetch")).run({})
    message = str(info.value)
    assert message.startswith("Fetch 'fetch' defines `async def exec`, but a sync Node calls exec()")
    assert "Subclass kaygraph.AsyncNode and define `async def exec_async`" in message
    assert info.value.node_id == "fetch"


def test_an_async_node_with_only_sync_methods_warns_at_class_creation():
    def build():
        class Summarize(AsyncNode):
            def prep(self, shared):
                return shared["text"]

            async def exec_async(self, text):  # this one has its async name: no warning for exec
                return text[:3]

            def post(self, shared, prep_res, exec_res):
                shared["summary"] = exec_res

    caught = created_warnings(build)
    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == 2
    assert messages[0].startswith(
        "Summarize is an AsyncNode but defines post() and not post_async(): an AsyncNode runs "
        "post_async, so post is never called."
    )
    assert messages[1].startswith("Summarize is an AsyncNode but defines prep() and not prep_async()")
    assert all(warning.filename == __file__ for warning in caught)


def test_graph_ends_warning_keeps_its_text_points_at_post_and_suggests_the_edge():
    class Review(Node):
        def post(self, shared, prep_res, exec_res):
            return "aprove"

    review = Review()
    review - "approve" >> Node()
    with pytest.warns(UserWarning, match=r"^Graph ends: 'aprove' not found in \['approve'\]") as caught:
        Graph(start=review).run({})
    warning = caught[0]
    assert str(warning.message).endswith(
        "(did you mean 'approve'? node 'Review' returned 'aprove' from post())"
    )
    assert warning.filename == __file__
    assert warning.lineno == Review.post.__code__.co_firstlineno


def test_graph_ends_warning_without_a_close_match_and_in_async_graphs():
    class Done(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            return "finished"

    done = Done()
    done - "retry" >> Node()
    with pytest.warns(UserWarning) as caught:
        asyncio.run(AsyncGraph(start=done).run_async({}))
    assert str(caught[0].message) == "Graph ends: 'finished' not found in ['retry']"
    assert caught[0].filename == __file__
