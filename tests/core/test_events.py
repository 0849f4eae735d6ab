"""Lifecycle events: order, paths, per-run and global listeners, validation, and the resume seam."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchNode,
    BatchGraph,
    BatchNode,
    Graph,
    GraphExecutionError,
    Node,
    ParallelBatchNode,
    ResumePoint,
    RunListener,
    add_listener,
    get_listeners,
    remove_listener,
)
from kaygraph.core.exceptions import ListenerError


class Recorder(RunListener):
    """Keeps (event, details) tuples; thread-safe enough for append under the GIL."""

    def __init__(self):
        self.events = []

    def on_run_start(self, *, run, graph, shared, **kwargs):
        self.events.append(("run_start", graph.name, run.run_id))

    def on_run_end(self, *, run, action, error, duration, **kwargs):
        self.events.append(("run_end", action, type(error).__name__ if error else None))
        assert duration >= 0

    def on_node_start(self, *, node_id, path, params, **kwargs):
        self.events.append(("start", path))

    def on_node_end(self, *, node_id, path, action, next_node_id, duration, **kwargs):
        self.events.append(("end", path, action, next_node_id))

    def on_node_error(self, *, path, error, attempts, **kwargs):
        self.events.append(("error", path, type(error).__name__, attempts))

    def on_retry(self, *, path, attempt, error, wait, **kwargs):
        self.events.append(("retry", path, attempt, wait))

    def on_batch_item_start(self, *, path, index, item, **kwargs):
        self.events.append(("item_start", path, index))

    def on_batch_item_end(self, *, path, index, result, error, **kwargs):
        self.events.append(("item_end", path, index, result, type(error).__name__ if error else None))


class Step(Node):
    def __init__(self, action=None, **kwargs):
        super().__init__(**kwargs)
        self.action = action

    def post(self, shared, prep_res, exec_res):
        shared.setdefault("ran", []).append(self.node_id)
        return self.action


def test_events_of_a_run_with_a_nested_graph_in_order():
    inner = Graph(start=Step("inner_done", node_id="leaf"), node_id="sub")
    first = Step(node_id="first")
    first >> inner
    recorder = Recorder()
    Graph(start=first, name="main").run({}, listeners=[recorder], run_id="run-1")
    assert recorder.events == [
        ("run_start", "main", "run-1"),
        ("start", ("first",)),
        ("end", ("first",), None, "sub"),
        ("start", ("sub",)),
        ("start", ("sub", "leaf")),
        ("end", ("sub", "leaf"), "inner_done", None),
        ("end", ("sub",), "inner_done", None),
        ("run_end", "inner_done", None),
    ]


def test_retry_error_and_run_end_events_on_failure():
    class Broken(Node):
        def exec(self, prep_res):
            raise TimeoutError

    recorder = Recorder()
    with pytest.raises(TimeoutError):
        Graph(start=Broken(max_retries=3, node_id="llm")).run({}, listeners=[recorder])
    assert recorder.events[1:] == [
        ("start", ("llm",)),
        ("retry", ("llm",), 1, 0),
        ("retry", ("llm",), 2, 0),
        ("error", ("llm",), "TimeoutError", 3),
        ("run_end", None, "TimeoutError"),
    ]


def test_batch_items_report_index_and_result_with_batch_graph_indices_in_the_path():
    class Square(BatchNode):
        def prep(self, shared):
            return [self.params["base"], self.params["base"] + 1]

        def exec(self, item):
            return item * item

    class PerBase(BatchGraph):
        def prep(self, shared):
            return [{"base": 2}, {"base": 5}]

    recorder = Recorder()
    PerBase(start=Square(node_id="square"), node_id="bases").run({}, listeners=[recorder])
    items = [e for e in recorder.events if e[0].startswith("item")]
    assert items == [
        ("item_start", (), 0),
        ("item_start", (0, "square"), 0),
        ("item_end", (0, "square"), 0, 4, None),
        ("item_start", (0, "square"), 1),
        ("item_end", (0, "square"), 1, 9, None),
        ("item_end", (), 0, None, None),
        ("item_start", (), 1),
        ("item_start", (1, "square"), 0),
        ("item_end", (1, "square"), 0, 25, None),
        ("item_start", (1, "square"), 1),
        ("item_end", (1, "square"), 1, 36, None),
        ("item_end", (), 1, None, None),
    ]


def test_parallel_and_async_parallel_items_are_each_reported_once():
    class Threads(ParallelBatchNode):
        def prep(self, shared):
            return range(20)

        def exec(self, item):
            return -item

    class Tasks(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return range(20)

        async def exec_async(self, item):
            return -item

    for graph, runner in (
        (Graph(start=Threads(max_workers=4)), lambda g, r: g.run({}, listeners=[r])),
        (
            AsyncGraph(start=Tasks(max_concurrency=3)),
            lambda g, r: asyncio.run(g.run_async({}, listeners=[r])),
        ),
    ):
        recorder = Recorder()
        runner(graph, recorder)
        ends = sorted((e[2], e[3]) for e in recorder.events if e[0] == "item_end")
        assert ends == [(i, -i) for i in range(20)]


def test_global_listeners_see_every_run_until_removed():
    recorder = Recorder()
    add_listener(recorder)
    add_listener(recorder)  # idempotent
    assert get_listeners().count(recorder) == 1
    Graph(start=Step()).run({})
    remove_listener(recorder)
    Graph(start=Step()).run({})
    assert [e[0] for e in recorder.events] == ["run_start", "start", "end", "run_end"]


def test_async_runs_emit_the_same_events():
    class Hello(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            return "hi"

    recorder = Recorder()
    asyncio.run(AsyncGraph(start=Hello(), name="a").run_async({}, listeners=[recorder], run_id="r"))
    assert recorder.events == [
        ("run_start", "a", "r"),
        ("start", ("Hello",)),
        ("end", ("Hello",), "hi", None),
        ("run_end", "hi", None),
    ]


def test_listener_with_a_misspelled_hook_is_rejected_with_a_suggestion():
    class Typo(RunListener):
        def on_node_ends(self, **kwargs):
            pass

    with pytest.raises(ListenerError, match=r"unknown hook 'on_node_ends'\. Did you mean 'on_node_end'"):
        Graph(start=Step()).run({}, listeners=[Typo()])


def test_listener_hooks_must_accept_new_keyword_arguments():
    class Rigid:
        def on_node_end(self, *, run, node_id):
            pass

    with pytest.raises(ListenerError, match=r"must accept \*\*kwargs"):
        add_listener(Rigid())


def test_objects_without_hooks_are_not_listeners():
    with pytest.raises(ListenerError, match="is not a listener"):
        add_listener(object())


def test_duck_typed_listener_works():
    seen = []

    class Duck:
        def on_node_end(self, *, node_id, **kwargs):
            seen.append(node_id)

    Graph(start=Step(node_id="only")).run({}, listeners=[Duck()])
    assert seen == ["only"]


def test_run_ids_are_unique_when_not_given():
    ids = []

    class Ids(RunListener):
        def on_run_start(self, *, run, **kwargs):
            ids.append(run.run_id)

    graph = Graph(start=Step())
    for _ in range(3):
        graph.run({}, listeners=[Ids()])
    assert len(set(ids)) == 3 and all(len(i) == 32 for i in ids)


# -- the resume seam -------------------------------------------------------------------------


def chain(*ids, graph_id=None):
    nodes = [Step(node_id=i) for i in ids]
    for left, right in itertools.pairwise(nodes):
        left >> right
    return Graph(start=nodes[0], node_id=graph_id)


def test_resume_starts_at_the_given_node_with_the_given_state():
    shared = {"ran": ["a"]}
    chain("a", "b", "c").run(shared, resume=ResumePoint(["b"]))
    assert shared["ran"] == ["a", "b", "c"]


def test_resume_inside_a_nested_graph_then_continues_outside():
    inner = chain("x", "y", graph_id="inner")
    start = Step(node_id="start")
    after = Step(node_id="after")
    start >> inner >> after
    shared = {"ran": []}
    Graph(start=start).run(shared, resume=ResumePoint(["inner", "y"]))
    assert shared["ran"] == ["y", "after"]


def test_resume_at_the_end_of_a_nested_level_routes_on_the_saved_action():
    inner = chain("x", graph_id="inner")
    branch = Step(node_id="branch")
    inner - "special" >> branch
    shared = {"ran": []}
    Graph(start=inner).run(shared, resume=ResumePoint(["inner", None], last_action="special"))
    assert shared["ran"] == ["branch"]


def test_resume_a_batch_node_skips_completed_items():
    calls = []

    class Embed(BatchNode):
        def prep(self, shared):
            return ["a", "b", "c", "d"]

        def exec(self, item):
            calls.append(item)
            return item.upper()

        def post(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    Graph(start=Embed(node_id="embed")).run(
        shared, resume=ResumePoint(["embed"], completed_items={0: "A", 2: "C"})
    )
    assert calls == ["b", "d"]
    assert shared["out"] == ["A", "B", "C", "D"]


def test_resume_a_parallel_batch_node_skips_completed_items():
    calls = []

    class Embed(ParallelBatchNode):
        def prep(self, shared):
            return list(range(6))

        def exec(self, item):
            calls.append(item)
            return item * 10

        def post(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    Graph(start=Embed(node_id="embed", max_workers=3)).run(
        shared, resume=ResumePoint(["embed"], completed_items={i: i * 10 for i in range(4)})
    )
    assert sorted(calls) == [4, 5]
    assert shared["out"] == [0, 10, 20, 30, 40, 50]


def test_resume_a_batch_graph_at_a_parameter_set_and_inner_node():
    class PerDoc(BatchGraph):
        def prep(self, shared):
            return [{"doc": d} for d in ("d0", "d1", "d2")]

    class Mark(Node):
        def __init__(self, tag, **kwargs):
            super().__init__(**kwargs)
            self.tag = tag

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("ran", []).append(f"{self.params['doc']}:{self.tag}")

    first, second = Mark("parse", node_id="parse"), Mark("index", node_id="index")
    first >> second
    shared = {}
    PerDoc(start=first, node_id="docs").run(shared, resume=ResumePoint([1, "index"]))
    assert shared["ran"] == ["d1:index", "d2:parse", "d2:index"]


def test_resume_at_an_unknown_node_names_it():
    with pytest.raises(GraphExecutionError, match="at node 'gone'") as info:
        chain("a", "b").run({}, resume=ResumePoint(["gone"]), run_id="r-9")
    assert "run 'r-9'" in str(info.value) and "['a', 'b']" in str(info.value)
    assert info.value.node_id == "gone"


def test_resume_of_a_finished_top_level_runs_nothing():
    shared = {"ran": []}
    assert chain("a").run(shared, resume=ResumePoint([None], last_action="done")) == "done"
    assert shared["ran"] == []


def test_item_start_events_carry_the_batch_size():
    sizes = []

    class Sizes(RunListener):
        def on_batch_item_start(self, *, index, size, **kwargs):
            sizes.append((index, size))

    class Each(BatchNode):
        def prep(self, shared):
            return (word for word in ("a", "b", "c"))  # a generator: the size is still known

    Graph(start=Each()).run({}, listeners=[Sizes()])
    assert sizes == [(0, 3), (1, 3), (2, 3)]


def test_a_cancelled_async_step_is_reported_as_a_node_error():
    errors = []

    class Errors(RunListener):
        def on_node_error(self, *, node_id, error, **kwargs):
            errors.append((node_id, type(error).__name__))

    class Slow(AsyncNode):
        async def exec_async(self, prep_res):
            await asyncio.sleep(3600)

    async def main():
        task = asyncio.create_task(AsyncGraph(start=Slow()).run_async({}, listeners=[Errors()]))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert errors == [("Slow", "CancelledError")]


def test_topology_version_changes_when_an_edge_is_added():
    graph = Graph(start=Step())
    graph.nodes()
    before = graph.topology_version
    fresh, other = Step(), Step()
    fresh >> other  # nodes in no graph yet: nothing cached can be stale
    assert graph.topology_version == before
    graph.start_node >> fresh
    assert graph.topology_version != before
    assert len(graph.nodes()) == 3


def test_resume_restores_the_params_of_the_checkpointed_run():
    seen = []

    class Show(Node):
        def prep(self, shared):
            seen.append((self.node_id, dict(self.params)))

    first, second = Show(node_id="a"), Show(node_id="b")
    first >> second
    graph = Graph(start=first)
    graph.run({}, resume=ResumePoint(["b"], params={"lang": "fr"}))
    assert seen == [("b", {"lang": "fr"})]
    assert graph.params == {}  # the template keeps its own params


def test_end_events_reach_listeners_in_reverse_order_and_duplicates_are_called_once():
    calls = []

    class Named(RunListener):
        def __init__(self, name):
            self.name = name

        def on_run_start(self, **kwargs):
            calls.append(("run_start", self.name))

        def on_node_start(self, **kwargs):
            calls.append(("start", self.name))

        def on_node_end(self, **kwargs):
            calls.append(("end", self.name))

        def on_run_end(self, **kwargs):
            calls.append(("run_end", self.name))

    first, second = Named("first"), Named("second")
    add_listener(first)
    Graph(start=Step()).run({}, listeners=[first, second])
    assert calls == [
        ("run_start", "first"),
        ("run_start", "second"),
        ("start", "first"),
        ("start", "second"),
        ("end", "second"),
        ("end", "first"),
        ("run_end", "second"),
        ("run_end", "first"),
    ]


def test_cancelled_batch_items_report_their_end():
    ends = []

    class Items(RunListener):
        def on_batch_item_end(self, *, index, error, **kwargs):
            ends.append((index, type(error).__name__))

    class Calls(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [0, 1, 2]

        async def exec_async(self, item):
            if item == 0:
                await asyncio.sleep(0.01)
                raise ValueError("item 0")
            await asyncio.sleep(3600)

    with pytest.raises(ValueError):
        asyncio.run(AsyncGraph(start=Calls()).run_async({}, listeners=[Items()]))
    assert sorted(ends) == [(0, "ValueError"), (1, "CancelledError"), (2, "CancelledError")]
