"""Generic nodes, 0.3's type aliases, and the per-node execution context (sync and async)."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import typing

import kaygraph
from kaygraph import AsyncGraph, AsyncNode, BatchNode, Graph, Node


def test_nodes_are_subscriptable_and_subclassable_like_0_3_generics() -> None:
    class Length(Node[str, int]):
        def prep(self, shared: kaygraph.T_Shared) -> str:
            return shared["text"]

        def exec(self, text: str) -> int:
            return len(text)

        def post(self, shared: kaygraph.T_Shared, prep_res: str, exec_res: int) -> kaygraph.T_Action:
            shared["length"] = exec_res
            return None

    shared = {"text": "four"}
    Graph(start=Length()).run(shared)

    assert shared["length"] == 4
    assert Node[str, int].__origin__ is Node and Node[str, int].__args__ == (str, int)
    assert issubclass(Length, Node) and Length.__mro__[1] is Node
    prep_res, exec_res = kaygraph.T_PrepRes, kaygraph.T_ExecRes
    assert isinstance(prep_res, typing.TypeVar) and isinstance(exec_res, typing.TypeVar)
    assert BatchNode[list, int].__origin__ is BatchNode  # every node class, as 0.3's BaseNode
    assert typing.get_type_hints(Length.exec)["return"] is int


def test_aliases_are_the_types_0_3_named() -> None:
    assert kaygraph.T_Shared == dict[str, typing.Any] == kaygraph.T_Params
    assert kaygraph.T_Action == (str | None)
    assert kaygraph.core.T_Shared is kaygraph.T_Shared
    assert {"T_Shared", "T_Params", "T_Action", "T_PrepRes", "T_ExecRes"} <= set(kaygraph.__all__)


def test_import_kaygraph_does_not_import_typing_until_an_alias_is_used() -> None:
    code = (
        "import json, sys\n"
        "import kaygraph\n"
        "from kaygraph import Node\n"
        "class N(Node[str, int]): pass\n"
        "before = 'typing' in sys.modules\n"
        "kaygraph.T_Shared\n"
        "print(json.dumps([before, 'typing' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [False, True]


class Stopwatch(Node):
    def before_prep(self, shared):
        self.set_context("seen", shared["tick"])

    def exec(self, prep_res):
        return prep_res

    def after_exec(self, shared, prep_res, exec_res):
        shared["read_in_step"] = self.get_context("seen")

    def post(self, shared, prep_res, exec_res):
        self.set_context("runs", self.get_context("runs", 0) + 1)


def test_context_is_shared_by_hooks_of_a_step_and_readable_after_the_run() -> None:
    node = Stopwatch()
    graph = Graph(start=node)
    for tick in (1, 2):
        shared = {"tick": tick}
        graph.run(shared)
        assert shared["read_in_step"] == tick

    assert node.get_context("seen") == 2
    assert node.get_context("runs") == 2
    assert node.get_context("missing", "default") == "default"
    assert node._execution_context["runs"] == 2  # the attribute 0.3 programs read


def test_each_node_has_its_own_context_even_without_calling_super_init() -> None:
    class Bare(Node):
        def __init__(self):  # no super().__init__(): context still exists
            self.flag = True

    one, two = Stopwatch(), Stopwatch()
    one.set_context("k", 1)
    assert two.get_context("k") is None
    assert Bare().get_context("k", "none") == "none"


def test_context_survives_pickling_for_remote_executors() -> None:
    node = Stopwatch()
    node.set_context("k", [1, 2])
    assert pickle.loads(pickle.dumps(node)).get_context("k") == [1, 2]


class AsyncCounter(AsyncNode[int, int]):
    async def prep_async(self, shared):
        self.set_context("started_with", shared["n"])
        return shared["n"]

    async def exec_async(self, n):
        await asyncio.sleep(0)
        return n + 1

    async def post_async(self, shared, prep_res, exec_res):
        shared["n"] = exec_res
        shared["context"] = self.get_context("started_with")


def test_async_nodes_are_generic_and_keep_a_context() -> None:
    node = AsyncCounter()
    shared = {"n": 1}
    asyncio.run(AsyncGraph(start=node).run_async(shared))

    assert shared == {"n": 2, "context": 1}
    assert node.get_context("started_with") == 1
    assert AsyncNode[int, int].__origin__ is AsyncNode
