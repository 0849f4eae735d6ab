"""The lifecycle hooks (``before_prep``, ``after_exec``, ``on_error``) get exactly the objects of
their step — the shared store itself, prep's and exec's results, the error raised — in order, for
nodes, async nodes (plain or ``async def`` hooks), batch nodes and graphs used as nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kaygraph import AsyncGraph, AsyncNode, BatchNode, Graph, Node

PREP, EXEC = object(), object()


class Hooked(Node):
    """Records each call with the identities of its arguments."""

    def __init__(self, fail: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail = fail

    def before_prep(self, shared: Any) -> None:
        shared["calls"].append(("before_prep", shared))

    def prep(self, shared: Any) -> Any:
        shared["calls"].append(("prep", shared))
        return PREP

    def exec(self, prep_res: Any) -> Any:
        if self.fail:
            raise LookupError("exec failed")
        return EXEC

    def after_exec(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        shared["calls"].append(("after_exec", shared, prep_res, exec_res))

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["calls"].append(("post", shared, prep_res, exec_res))
        return "done"

    def on_error(self, shared: Any, error: BaseException) -> None:
        shared["calls"].append(("on_error", shared, error))


class AsyncHooked(AsyncNode):
    """The async twin; ``before_prep`` and ``on_error`` are ``async def``, ``after_exec`` plain."""

    def __init__(self, fail: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail = fail

    async def before_prep(self, shared: Any) -> None:
        await asyncio.sleep(0)
        shared["calls"].append(("before_prep", shared))

    async def prep_async(self, shared: Any) -> Any:
        shared["calls"].append(("prep", shared))
        return PREP

    async def exec_async(self, prep_res: Any) -> Any:
        if self.fail:
            raise LookupError("exec failed")
        return EXEC

    def after_exec(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        shared["calls"].append(("after_exec", shared, prep_res, exec_res))

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["calls"].append(("post", shared, prep_res, exec_res))
        return "done"

    async def on_error(self, shared: Any, error: BaseException) -> None:
        await asyncio.sleep(0)
        shared["calls"].append(("on_error", shared, error))


def expected_success(shared: Any) -> list[tuple[Any, ...]]:
    return [
        ("before_prep", shared),
        ("prep", shared),
        ("after_exec", shared, PREP, EXEC),
        ("post", shared, PREP, EXEC),
    ]


def same(calls: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> bool:
    """Equal, element by element, by identity (the hooks must get the very objects)."""
    return len(calls) == len(expected) and all(
        len(got) == len(want)
        and got[0] == want[0]
        and all(a is b for a, b in zip(got[1:], want[1:], strict=True))
        for got, want in zip(calls, expected, strict=True)
    )


def test_hooks_of_a_node_get_the_objects_of_their_step() -> None:
    shared: dict[str, Any] = {"calls": []}
    assert Graph(start=Hooked()).run(shared) == "done"
    assert same(shared["calls"], expected_success(shared))


def test_hooks_of_an_async_node_get_the_objects_of_their_step() -> None:
    shared: dict[str, Any] = {"calls": []}
    assert asyncio.run(AsyncGraph(start=AsyncHooked()).run_async(shared)) == "done"
    assert same(shared["calls"], expected_success(shared))


@pytest.mark.parametrize("async_node", [False, True], ids=["Node", "AsyncNode"])
def test_on_error_gets_the_error_which_then_propagates(async_node: bool) -> None:
    shared: dict[str, Any] = {"calls": []}
    with pytest.raises(LookupError, match="exec failed") as caught:
        if async_node:
            asyncio.run(AsyncGraph(start=AsyncHooked(fail=True)).run_async(shared))
        else:
            Graph(start=Hooked(fail=True)).run(shared)
    expected = [("before_prep", shared), ("prep", shared), ("on_error", shared, caught.value)]
    assert same(shared["calls"], expected)  # no after_exec, no post


def test_a_node_run_directly_calls_its_hooks_too() -> None:
    shared: dict[str, Any] = {"calls": []}
    assert Hooked().run(shared) == "done"
    assert same(shared["calls"], expected_success(shared))


def test_a_fallback_result_reaches_after_exec_and_post() -> None:
    class Recovers(Hooked):
        def exec_fallback(self, prep_res: Any, exc: Exception) -> Any:
            return ("fallback", prep_res, type(exc).__name__)

    shared: dict[str, Any] = {"calls": []}
    Graph(start=Recovers(fail=True, max_retries=2)).run(shared)
    after, post = shared["calls"][2], shared["calls"][3]
    assert after[0] == "after_exec" and after[3] == ("fallback", PREP, "LookupError")
    assert post[0] == "post" and post[3] == ("fallback", PREP, "LookupError")


def test_hooks_of_a_batch_node_see_the_whole_batch() -> None:
    class Batch(BatchNode):
        def before_prep(self, shared: Any) -> None:
            shared["calls"].append(("before_prep",))

        def prep(self, shared: Any) -> Any:
            return [1, 2, 3]

        def exec(self, item: int) -> int:
            return item * 10

        def after_exec(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
            shared["calls"].append(("after_exec", prep_res, exec_res))

    shared: dict[str, Any] = {"calls": []}
    Graph(start=Batch()).run(shared)
    assert shared["calls"] == [("before_prep",), ("after_exec", [1, 2, 3], [10, 20, 30])]


def test_hooks_of_a_graph_used_as_a_node_wrap_its_whole_run() -> None:
    class Inner(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["calls"].append(("inner",))
            return "inner-done"

    class Outer(Graph):
        def before_prep(self, shared: Any) -> None:
            shared["calls"].append(("before_prep",))

        def after_exec(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
            shared["calls"].append(("after_exec", exec_res))

    shared: dict[str, Any] = {"calls": []}
    assert Graph(start=Outer(start=Inner())).run(shared) == "inner-done"
    assert shared["calls"] == [("before_prep",), ("inner",), ("after_exec", "inner-done")]


def test_a_method_named_like_a_hook_with_the_wrong_arguments_warns_and_is_not_called() -> None:
    with pytest.warns(UserWarning, match=r"after_exec .*after_exec\(self, shared, prep_res, exec_res\)"):

        class Wrong(Node):
            def after_exec(self, shared: Any) -> None:  # type: ignore[override]
                raise AssertionError("must not be called as a hook")

    assert Graph(start=Wrong()).run({}) is None
