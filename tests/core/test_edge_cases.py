"""Edge cases found in review: ids of shared nodes, strict resume paths, listener failures,
cancellation, PocketFlow-style overrides, copy semantics, hooks on graphs and resources."""

from __future__ import annotations

import asyncio
import time
import types

import pytest

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    BatchGraph,
    Graph,
    GraphExecutionError,
    Node,
    ParallelBatchNode,
    ResumePoint,
    RunListener,
)


class Step(Node):
    def post(self, shared, prep_res, exec_res):
        shared.setdefault("ran", []).append(self.node_id)


class Paths(RunListener):
    def __init__(self):
        self.events = []

    def on_node_start(self, *, path, **kwargs):
        self.events.append(("start", path))

    def on_node_end(self, *, path, next_node_id, **kwargs):
        self.events.append(("end", path, next_node_id))

    def on_node_error(self, *, path, **kwargs):
        self.events.append(("error", path))

    def on_run_end(self, *, error, **kwargs):
        self.events.append(("run_end", type(error).__name__ if error else None))


def test_a_node_shared_by_two_graphs_gets_the_right_id_in_each():
    shared_node = Step()
    first = Step()
    first >> shared_node
    g1 = Graph(start=first)
    g2 = Graph(start=shared_node)
    assert list(g1.nodes()) == ["Step", "Step_2"]
    assert list(g2.nodes()) == ["Step"]
    listener = Paths()
    g1.run({}, listeners=[listener])
    starts = [e[1] for e in listener.events if e[0] == "start"]
    assert starts == [("Step",), ("Step_2",)]


def test_building_another_graph_does_not_invalidate_cached_ids():
    graph = Graph(start=Step())
    graph.nodes()
    version = graph._ids_version
    Graph()
    Graph(start=Step())
    graph.run({})
    assert graph._ids_version == version


def test_resume_path_continuing_past_a_plain_node_is_rejected():
    inner = Graph(start=Step(node_id="x"), node_id="sub")
    first = Step(node_id="a")
    first >> inner
    with pytest.raises(GraphExecutionError, match="continues past node 'a', which is not a graph"):
        Graph(start=first).run({}, resume=ResumePoint(["a", "x"]))


def test_a_resume_point_can_be_reused_for_several_runs():
    graph = Graph(start=Step(node_id="a"))
    point = ResumePoint(["a"])
    for _ in range(2):
        shared = {}
        graph.run(shared, resume=point)
        assert shared["ran"] == ["a"]


def test_resume_into_a_parallel_batch_graph_at_a_set_index_is_rejected():
    class Sets(AsyncParallelBatchGraph):
        async def prep_async(self, shared):
            return [{"i": i} for i in range(3)]

    graph = AsyncGraph(start=Sets(start=Step(node_id="s"), node_id="sets"))
    with pytest.raises(GraphExecutionError, match="resumes only as a whole"):
        asyncio.run(graph.run_async({}, resume=ResumePoint(["sets", 2, "s"])))


def test_batch_graph_level_needs_an_index_in_the_resume_path():
    class Sets(BatchGraph):
        def prep(self, shared):
            return [{}]

    graph = Graph(start=Sets(start=Step(node_id="s"), node_id="sets"))
    with pytest.raises(GraphExecutionError, match="expected a parameter-set index"):
        graph.run({}, resume=ResumePoint(["sets", "s"]))


def test_parallel_batch_graph_accepts_a_generator_like_pocketflow():
    class Sets(AsyncParallelBatchGraph):
        async def prep_async(self, shared):
            return ({"i": i} for i in range(3))

    class Collect(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            shared.setdefault("seen", []).append(self.params["i"])

    shared = {}
    asyncio.run(Sets(start=Collect()).run_async(shared))
    assert sorted(shared["seen"]) == [0, 1, 2]


def test_async_batches_do_not_test_the_truth_of_their_items():
    class ArrayLike:
        def __init__(self, values):
            self.values = values

        def __iter__(self):
            return iter(self.values)

        def __len__(self):
            return len(self.values)

        def __bool__(self):
            raise ValueError("truth value of an array is ambiguous")

    class Double(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return ArrayLike([1, 2, 3])

        async def exec_async(self, item):
            return item * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    asyncio.run(Double().run_async(shared))
    assert shared["out"] == [2, 4, 6]


def test_get_next_node_override_sees_the_node_that_ran():
    class Decide(Node):
        def post(self, shared, prep_res, exec_res):
            self.route = "yes"

    class Routed(Graph):
        def get_next_node(self, curr, action):
            return super().get_next_node(curr, getattr(curr, "route", action))

    decide = Decide()
    decide - "yes" >> Step(node_id="end")
    shared = {}
    Routed(start=decide).run(shared)
    assert shared["ran"] == ["end"]


def test_a_reused_exception_object_is_noted_for_each_run_that_raises_it():
    reused = TimeoutError("upstream timeout")

    class Fetch(Node):
        def exec(self, prep_res):
            raise reused

    class Other(Node):
        def exec(self, prep_res):
            raise reused

    with pytest.raises(TimeoutError):
        Graph(start=Fetch(max_retries=3), name="g1").run({})
    with pytest.raises(TimeoutError) as info:
        Graph(start=Other(), name="g2").run({})
    assert info.value.__notes__[-1] == (
        "KayGraph: node 'Other' (Other) of graph 'g2' failed after 1 attempt(s)"
    )


def test_a_failing_listener_does_not_hide_the_users_exception_nor_starve_other_listeners():
    class Broken(RunListener):
        def on_run_start(self, **kwargs):
            raise RuntimeError("listener broke at start")

        def on_node_error(self, **kwargs):
            raise RuntimeError("listener broke on error")

    class Bad(Node):
        def exec(self, prep_res):
            raise KeyError("answer")

    other = Paths()
    with pytest.raises(RuntimeError, match="listener broke at start"):
        Graph(start=Step()).run({}, listeners=[Broken(), other])
    assert other.events == [("run_end", "RuntimeError")]

    class OnlyErrors(RunListener):
        def on_node_error(self, **kwargs):
            raise RuntimeError("listener broke on error")

    other = Paths()
    with pytest.raises(KeyError) as info:
        Graph(start=Bad()).run({}, listeners=[OnlyErrors(), other])
    assert any("listener OnlyErrors.on_node_error also failed" in n for n in info.value.__notes__)
    assert other.events[-2:] == [("error", ("Bad",)), ("run_end", "KeyError")]


def test_listener_hooks_set_on_the_instance_are_called():
    seen = []
    listener = types.SimpleNamespace(on_node_end=lambda **kwargs: seen.append(kwargs["node_id"]))
    Graph(start=Step(node_id="only")).run({}, listeners=[listener])
    assert seen == ["only"]


def test_a_non_string_action_closes_the_step_with_an_error_event():
    class Five(Node):
        def post(self, shared, prep_res, exec_res):
            return 5

    five = Five()
    five - "x" >> Step()
    listener = Paths()
    with pytest.raises(GraphExecutionError) as info:
        Graph(start=five).run({}, listeners=[listener])
    assert listener.events == [("start", ("Five",)), ("error", ("Five",)), ("run_end", "GraphExecutionError")]
    assert "node 'Five'" in info.value.__notes__[0]


def test_async_parallel_failure_cancels_items_not_yet_started():
    started = []

    class Calls(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(20))

        async def exec_async(self, item):
            started.append(item)
            if item == 0:
                raise ConnectionError("item 0")
            await asyncio.sleep(0.01)

    async def main():
        with pytest.raises(ConnectionError):
            await AsyncGraph(start=Calls(max_concurrency=2)).run_async({})
        count = len(started)
        await asyncio.sleep(0.05)
        return count

    count_at_failure = asyncio.run(main())
    assert count_at_failure <= 3
    assert len(started) == count_at_failure


def test_ctrl_c_in_a_parallel_batch_does_not_wait_for_queued_items():
    """A real SIGINT during a parallel batch raises KeyboardInterrupt without running the queue.

    The test installs Python's default SIGINT handler itself: a suite started in the background
    (``pytest &``, CI without a terminal) inherits SIGINT as *ignored*, and then no Ctrl-C could
    ever arrive. The signal is sent by the first item, so no timer races a loaded machine.
    """
    import os
    import signal

    ran = []

    class Slow(ParallelBatchNode):
        def prep(self, shared):
            return list(range(40))

        def exec(self, item):
            ran.append(item)
            if item == 0:
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to the main thread
            time.sleep(0.05)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            Graph(start=Slow(max_workers=2)).run({})
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 0 in ran
    assert len(ran) < 40


def test_pocketflow_style_orch_override_still_works_with_a_listener():
    class Logged(BatchGraph):
        def prep(self, shared):
            return [{"n": 1}, {"n": 2}]

        def _orch(self, shared, params=None):
            shared.setdefault("params", []).append(params["n"])
            return super()._orch(shared, params)

    shared = {}
    Logged(start=Step()).run(shared, listeners=[Paths()])
    assert shared["params"] == [1, 2]


def test_nodes_with_slots_or_their_own_copy_are_copied_like_pocketflow():
    class Slotted(Node):
        __slots__ = ("model",)

        def __init__(self):
            super().__init__()
            self.model = "gpt"

        def post(self, shared, prep_res, exec_res):
            shared["model"] = self.model

    class Buffer(Node):
        def __init__(self):
            super().__init__()
            self.buf = []

        def __copy__(self):
            clone = type(self).__new__(type(self))
            clone.__dict__.update(self.__dict__)
            clone.buf = []
            return clone

        def post(self, shared, prep_res, exec_res):
            self.buf.append(1)

    shared = {}
    Graph(start=Slotted()).run(shared)
    assert shared == {"model": "gpt"}
    buffer = Buffer()
    graph = Graph(start=buffer)
    graph.run({})
    graph.run({})
    assert buffer.buf == []


def test_node_id_can_be_assigned_and_a_graph_name_class_attribute_is_kept():
    class Named(Node):
        def __init__(self):
            super().__init__()
            self.node_id = "step-1"

    class Pipeline(Graph):
        name = "ingest-pipeline"

    node = Named()
    graph = Pipeline(start=node)
    assert list(graph.nodes()) == ["step-1"]
    assert graph.name == "ingest-pipeline"


def test_a_helper_named_like_a_hook_with_another_signature_warns_and_is_not_called():
    with pytest.warns(UserWarning, match=r"Helper.on_error takes 1 argument\(s\)"):

        class Helper(Node):
            def on_error(self, exc):
                return f"handled {exc}"

            def exec(self, prep_res):
                raise KeyError("x")

    with pytest.raises(KeyError):
        Graph(start=Helper()).run({})


def test_hooks_defined_on_a_graph_run_around_its_nodes():
    calls = []

    class Sub(Graph):
        def before_prep(self, shared):
            calls.append("before")

        def on_error(self, shared, error):
            calls.append(("error", type(error).__name__))

    class Bad(Node):
        def exec(self, prep_res):
            raise KeyError("x")

    with pytest.raises(KeyError):
        Graph(start=Sub(start=Bad())).run({})
    assert calls == ["before", ("error", "KeyError")]


def test_with_graph_sets_up_the_graphs_own_resources_not_its_nodes_as_in_0_3():
    log = []

    class Res(Node):
        def setup_resources(self):
            log.append(f"node up {self.node_id}")

        def cleanup_resources(self):
            log.append(f"node down {self.node_id}")

    class Pipeline(Graph):
        def setup_resources(self):
            log.append("graph up")

        def cleanup_resources(self):
            log.append("graph down")

    graph = Pipeline(start=Res(node_id="a"))
    with graph as entered:
        assert entered is graph
        graph.run({})
    assert log == ["graph up", "graph down"]
    log.clear()
    with pytest.raises(KeyError), graph:  # the error propagates after the cleanup
        raise KeyError("x")
    assert log == ["graph up", "graph down"]
    with Res(node_id="b"):  # a node's own resources: `with node:`
        pass
    assert log[-2:] == ["node up b", "node down b"]


def test_hooks_defined_on_batch_graphs_run_around_all_parameter_sets():
    calls = []

    class Mark(Node):
        def post(self, shared, prep_res, exec_res):
            calls.append(("set", self.params["n"]))

    class AsyncMark(AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            calls.append(("set", self.params["n"]))

    class Sets(BatchGraph):
        def prep(self, shared):
            return [{"n": 1}, {"n": 2}]

        def before_prep(self, shared):
            calls.append("before")

        def after_exec(self, shared, prep_res, exec_res):
            calls.append(("after", len(prep_res)))

    class AsyncSets(AsyncParallelBatchGraph):
        async def prep_async(self, shared):
            return ({"n": n} for n in (3, 4))

        def before_prep(self, shared):
            calls.append("before")

        def after_exec(self, shared, prep_res, exec_res):
            calls.append("after")

    Sets(start=Mark()).run({})
    assert calls == ["before", ("set", 1), ("set", 2), ("after", 2)]
    calls.clear()
    asyncio.run(AsyncSets(start=AsyncMark(), max_concurrency=1).run_async({}))
    assert calls == ["before", ("set", 3), ("set", 4), "after"]


# -- second review -----------------------------------------------------------------------------


class Names(RunListener):
    def __init__(self):
        self.events = []

    def on_node_start(self, *, node_id, **kwargs):
        self.events.append(("start", node_id))

    def on_node_end(self, *, node_id, **kwargs):
        self.events.append(("end", node_id))

    def on_node_error(self, *, node_id, **kwargs):
        self.events.append(("error", node_id))

    def on_batch_item_end(self, *, index, error, duration, **kwargs):
        self.events.append(("item_end", index, type(error).__name__ if error else None))
        assert 0 <= duration < 60


def test_a_listener_does_not_change_what_a_batch_graph_computes():
    class Counting(BatchGraph):
        def prep(self, shared):
            self.count = 0
            return [{}, {}, {}]

        def _orch(self, shared, params=None):
            self.count += 1
            return super()._orch(shared, params)

        def post(self, shared, prep_res, exec_res):
            shared["count"] = self.count

    for listeners in ([], [Names()]):
        shared = {}
        Counting(start=Step()).run(shared, listeners=listeners)
        assert shared["count"] == 3


def test_resume_at_a_parameter_set_that_no_longer_exists_is_an_error():
    class Two(BatchGraph):
        def prep(self, shared):
            return [{}, {}]

    batch = Two(start=Step(node_id="a"), node_id="B")
    batch >> Graph(start=Step(node_id="a"), node_id="later")
    with pytest.raises(GraphExecutionError, match=r"parameter set 3 of batch graph 'Two'.*returned 2 set"):
        Graph(start=batch).run({}, resume=ResumePoint(["B", 3, "a"]))


def test_async_parallel_items_share_the_node_like_pocketflow_and_keep_their_own_retry():
    class Count(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            self.tokens = 0
            return ["a", "bb", "ccc"]

        async def exec_async(self, item):
            await asyncio.sleep(0.001)
            if item == "bb" and self.cur_retry == 0:
                raise ConnectionError("first try")
            self.tokens += len(item)
            return self.cur_retry

        async def post_async(self, shared, prep_res, exec_res):
            shared.update(tokens=self.tokens, retries=exec_res)

    shared = {}
    asyncio.run(Count(max_retries=2).run_async(shared))
    assert shared == {"tokens": 6, "retries": [0, 1, 0]}


def test_a_failing_end_hook_gives_no_duplicate_or_unmatched_events():
    class BadEnd(RunListener):
        def on_node_end(self, **kwargs):
            raise RuntimeError("bad end")

    class BadStart(RunListener):
        def on_node_start(self, **kwargs):
            raise RuntimeError("bad start")

    good = Names()
    with pytest.raises(RuntimeError, match="bad end"):
        Graph(start=Step(node_id="s")).run({}, listeners=[BadEnd(), good])
    assert good.events == [("start", "s"), ("end", "s")]
    good = Names()
    with pytest.raises(RuntimeError, match="bad start"):
        Graph(start=Step(node_id="s")).run({}, listeners=[BadStart(), good])
    assert good.events == [("start", "s"), ("error", "s")]


def test_a_non_callable_attribute_named_like_a_hook_is_not_called():
    with pytest.warns(UserWarning, match="Fetch.on_error is str"):

        class Fetch(Node):
            on_error = "skip"

            def exec(self, prep_res):
                raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        Graph(start=Fetch()).run({})


def test_no_item_starts_after_a_failure_with_a_concurrency_limit():
    started = []

    class Calls(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(5))

        async def exec_async(self, item):
            started.append(item)
            if item == 0:
                raise ConnectionError("item 0")
            await asyncio.sleep(0.01)

    with pytest.raises(ConnectionError):
        asyncio.run(AsyncGraph(start=Calls(max_concurrency=1)).run_async({}))
    assert started == [0]


def test_a_node_shared_by_two_graphs_knows_its_id_in_each_without_listeners():
    seen = []

    class Who(Node):
        def prep(self, shared):
            seen.append(self.node_id)

    shared_node = Who()
    g1 = Graph(start=shared_node)
    other = Who()
    other >> shared_node
    g2 = Graph(start=other)
    g1.nodes()
    g2.nodes()
    g1.run({})
    g2.run({})
    assert seen == ["Who", "Who", "Who_2"]


def test_a_graph_subclass_may_declare_name_as_a_property():
    class Named(Graph):
        name = property(lambda self: "pipeline")

    assert Named(start=Step()).name == "pipeline"


def test_async_nodes_await_async_hooks_and_sync_nodes_warn_about_them():
    class Opened(AsyncNode):
        async def before_prep(self, shared):
            await asyncio.sleep(0)
            shared["opened"] = True

    shared = {}
    asyncio.run(Opened().run_async(shared))
    assert shared == {"opened": True}
    with pytest.warns(UserWarning, match="is a coroutine function"):

        class SyncWithAsyncHook(Node):
            async def before_prep(self, shared):
                pass


def test_hooks_with_extra_optional_parameters_are_called():
    class Tolerant(Node):
        def on_error(self, shared, error, context=None):
            shared["handled"] = type(error).__name__

        def exec(self, prep_res):
            raise KeyError("x")

    shared = {}
    with pytest.raises(KeyError):
        Graph(start=Tolerant()).run(shared)
    assert shared == {"handled": "KeyError"}


def test_async_item_durations_are_sane_when_a_start_hook_fails():
    class BadItemStart(RunListener):
        def on_batch_item_start(self, **kwargs):
            raise RuntimeError("bad item start")

    class One(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [1]

    good = Names()
    with pytest.raises(RuntimeError):
        asyncio.run(AsyncGraph(start=One()).run_async({}, listeners=[BadItemStart(), good]))
    assert ("item_end", 0, "RuntimeError") in good.events


def test_batch_graph_post_gets_an_empty_list_when_prep_returns_none_with_or_without_hooks():
    class Plain(BatchGraph):
        def post(self, shared, prep_res, exec_res):
            shared["prep_res"] = prep_res

    class Hooked(Plain):
        def before_prep(self, shared):
            pass

    for cls in (Plain, Hooked):
        shared = {}
        cls(start=Step()).run(shared)
        assert shared == {"prep_res": []}
