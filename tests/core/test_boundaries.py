"""Both sides of every documented limit of a run, for Graph and AsyncGraph alike.

Routing: ``None`` (or ``""``) follows the ``default`` edge; any other action follows only its own
edge, and an action without an edge ends the run with a warning — it never falls back to
``default``. Step limit: ``max_steps=N`` runs exactly N nodes and refuses the N+1th. Retries:
``max_retries=N`` is N attempts in all. Each test runs through the public API only, so it holds
whatever the engine looks like inside.
"""

from __future__ import annotations

import asyncio
import itertools
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from kaygraph import AsyncGraph, AsyncNode, Graph, GraphDefinitionError, GraphExecutionError, Node


class Say(Node):
    """Records its id in ``shared["trail"]`` and returns ``action`` from post."""

    def __init__(self, action: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared.setdefault("trail", []).append(self.node_id)
        return self.action


class AsyncSay(AsyncNode):
    """The async twin of :class:`Say`."""

    def __init__(self, action: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action = action

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared.setdefault("trail", []).append(self.node_id)
        return self.action


def run_sync(start: Any, shared: dict[str, Any], **graph_kwargs: Any) -> Any:
    return Graph(start=start, **graph_kwargs).run(shared)


def run_async(start: Any, shared: dict[str, Any], **graph_kwargs: Any) -> Any:
    return asyncio.run(AsyncGraph(start=start, **graph_kwargs).run_async(shared))


FLAVOURS = [pytest.param((Say, run_sync), id="Graph"), pytest.param((AsyncSay, run_async), id="AsyncGraph")]
Flavour = tuple[Callable[..., Any], Callable[..., Any]]


# -- routing: the default edge versus an action without an edge -----------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("action", [None, ""])
def test_no_action_follows_the_default_edge(flavour: Flavour, action: Any) -> None:
    make, run = flavour
    first = make(action, node_id="first")
    first >> make(node_id="fallback")
    first - "other" >> make(node_id="other")
    shared: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # following an edge never warns
        run(first, shared)
    assert shared["trail"] == ["first", "fallback"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_named_action_follows_its_own_edge_not_the_default(flavour: Flavour) -> None:
    make, run = flavour
    first = make("other", node_id="first")
    first >> make(node_id="fallback")
    first - "other" >> make(node_id="other")
    shared: dict[str, Any] = {}
    run(first, shared)
    assert shared["trail"] == ["first", "other"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_an_action_without_an_edge_ends_the_run_instead_of_taking_the_default(flavour: Flavour) -> None:
    make, run = flavour
    first = make("unknown", node_id="first")
    first >> make(node_id="fallback")
    first - "other" >> make(node_id="other")
    shared: dict[str, Any] = {}
    with pytest.warns(UserWarning, match=r"'unknown' not found in \['default', 'other'\]"):
        last = run(first, shared)
    assert shared["trail"] == ["first"]
    assert last == "unknown"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("action", ["Default", "default ", "DEFAULT"])
def test_actions_match_edges_exactly(flavour: Flavour, action: str) -> None:
    make, run = flavour
    first = make(action, node_id="first")
    first >> make(node_id="fallback")
    shared: dict[str, Any] = {}
    with pytest.warns(UserWarning, match="not found"):
        run(first, shared)
    assert shared["trail"] == ["first"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_last_node_ends_the_run_silently_whatever_it_returns(flavour: Flavour) -> None:
    make, run = flavour
    shared: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(make("anything", node_id="only"), shared) == "anything"
    assert shared["trail"] == ["only"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_non_string_action_with_edges_is_an_error_naming_the_node(flavour: Flavour) -> None:
    make, run = flavour
    first = make(3, node_id="first")
    first >> make(node_id="fallback")
    with pytest.raises(GraphExecutionError, match=r"node 'first' returned 3 \(int\)") as caught:
        run(first, {})
    assert caught.value.node_id == "first"


# -- max_steps: exactly N nodes run, the N+1th is refused -------------------------------------------


def line(make: Callable[..., Any], count: int) -> Any:
    """``count`` nodes n1 >> n2 >> ...; returns the first."""
    nodes = [make(node_id=f"n{index}") for index in range(1, count + 1)]
    for left, right in itertools.pairwise(nodes):
        left >> right
    return nodes[0]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("limit", [1, 2, 5])
def test_max_steps_allows_exactly_that_many_steps(flavour: Flavour, limit: int) -> None:
    make, run = flavour
    shared: dict[str, Any] = {}
    run(line(make, limit), shared, max_steps=limit)
    assert shared["trail"] == [f"n{index}" for index in range(1, limit + 1)]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("limit", [1, 2, 5])
def test_max_steps_refuses_one_step_more(flavour: Flavour, limit: int) -> None:
    make, run = flavour
    shared: dict[str, Any] = {}
    expected = f"exceeded max_steps={limit} when about to run node 'n{limit + 1}'"
    with pytest.raises(GraphExecutionError, match=expected) as caught:
        run(line(make, limit + 1), shared, max_steps=limit)
    assert caught.value.node_id == f"n{limit + 1}"
    assert shared["trail"] == [f"n{index}" for index in range(1, limit + 1)]  # the extra never ran


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_loop_counts_every_visit_as_a_step(flavour: Flavour) -> None:
    make, run = flavour
    spin = make("again", node_id="spin")
    spin - "again" >> spin
    shared: dict[str, Any] = {}
    with pytest.raises(GraphExecutionError, match="exceeded max_steps=4"):
        run(spin, shared, max_steps=4)
    assert shared["trail"] == ["spin"] * 4


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_no_max_steps_means_no_limit(flavour: Flavour) -> None:
    make, run = flavour
    shared: dict[str, Any] = {}
    run(line(make, 300), shared)
    assert len(shared["trail"]) == 300


@pytest.mark.parametrize("graph_class", [Graph, AsyncGraph])
@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "3"])
def test_max_steps_must_be_a_positive_int(graph_class: type[Graph], bad: Any) -> None:
    with pytest.raises(GraphDefinitionError, match=f"max_steps must be an int >= 1 or None, got {bad!r}"):
        graph_class(start=Say(), max_steps=bad)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_run_gets_the_full_step_budget(flavour: Flavour) -> None:
    make, run = flavour
    start = line(make, 3)
    graph_kwargs = {"max_steps": 3}
    for _ in range(3):  # the counter never carries over from an earlier run
        shared: dict[str, Any] = {}
        run(start, shared, **graph_kwargs)
        assert shared["trail"] == ["n1", "n2", "n3"]


# -- retries: max_retries=N is N attempts in all ----------------------------------------------------


class Flaky(Node):
    """Fails its first ``failures`` attempts; counts attempts in ``shared``."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures

    def prep(self, shared: Any) -> Any:
        return shared

    def exec(self, shared: Any) -> Any:
        shared["attempts"] = shared.get("attempts", 0) + 1
        if shared["attempts"] <= self.failures:
            raise ValueError(f"attempt {shared['attempts']}")
        return "ok"

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["result"] = exec_res


@pytest.mark.parametrize("retries", [1, 2, 4])
def test_the_last_allowed_attempt_may_succeed(retries: int) -> None:
    shared: dict[str, Any] = {}
    Graph(start=Flaky(failures=retries - 1, max_retries=retries)).run(shared)
    assert (shared["attempts"], shared["result"]) == (retries, "ok")


@pytest.mark.parametrize("retries", [1, 2, 4])
def test_one_failure_more_than_allowed_raises_after_exactly_max_retries_attempts(retries: int) -> None:
    shared: dict[str, Any] = {}
    with pytest.raises(ValueError) as caught:
        Graph(start=Flaky(failures=retries, max_retries=retries)).run(shared)
    assert caught.value.args == (f"attempt {retries}",)  # the last attempt's error escapes
    assert f"failed after {retries} attempt(s)" in "\n".join(getattr(caught.value, "__notes__", []))
    assert shared["attempts"] == retries and "result" not in shared
