"""CancelToken: runs stop before the next node, retry wait or batch item; async runs cancel the
awaited work; thread-pool items that have not started never start."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kaygraph import (
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchNode,
    BatchGraph,
    BatchNode,
    CancelToken,
    Graph,
    KayGraphError,
    Node,
    ParallelBatchNode,
    RunCancelled,
    RunListener,
)


class Step(Node):
    def __init__(self, name, token=None, cancel_at=None, **kwargs):
        super().__init__(node_id=name, **kwargs)
        self.name, self.token, self.cancel_at = name, token, cancel_at

    def exec(self, prep_res):
        if self.cancel_at == self.name:
            self.token.cancel("user asked")

    def post(self, shared, prep_res, exec_res):
        shared.setdefault("ran", []).append(self.name)


class Errors(RunListener):
    def __init__(self):
        self.node_errors, self.run_errors = [], []

    def on_node_error(self, *, node_id, error, **kwargs):
        self.node_errors.append((node_id, type(error).__name__))

    def on_run_end(self, *, error, **kwargs):
        self.run_errors.append(error)


def chain(token, cancel_at):
    a, b, c = (Step(name, token, cancel_at) for name in "abc")
    a >> b >> c
    return Graph(start=a)


def test_token_basics():
    token = CancelToken()
    seen = []
    token.add_callback(seen.append)
    assert not token.cancelled and token.reason is None
    assert token.wait(0.01) is False
    token.cancel("first")
    token.cancel("second")  # idempotent: the first reason stays, callbacks run once
    assert token.cancelled and token.reason == "first" and seen == [token]
    late = []
    token.add_callback(late.append)  # added after the cancel: called at once
    assert late == [token]
    started = time.perf_counter()
    assert token.wait(10) is True and time.perf_counter() - started < 1
    assert "cancelled" in repr(token)


def test_wait_wakes_every_waiter_when_cancelled_from_another_thread():
    token = CancelToken()
    woke = []
    threads = [threading.Thread(target=lambda: woke.append(token.wait(30))) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    started = time.perf_counter()
    token.cancel()
    for thread in threads:
        thread.join(5)
    assert woke == [True, True, True] and time.perf_counter() - started < 2


def test_cancel_between_nodes_stops_before_the_next_one():
    token = CancelToken()
    shared: dict = {}
    errors = Errors()
    with pytest.raises(RunCancelled) as info:
        chain(token, "b").run(shared, cancel=token, listeners=[errors], run_id="r1")
    assert shared["ran"] == ["a", "b"]
    error = info.value
    assert isinstance(error, KayGraphError)
    assert (error.reason, error.node_id, error.run_id) == ("user asked", "c", "r1")
    assert str(error) == "run 'r1' was cancelled at node 'c': user asked"
    assert errors.run_errors == [error] and errors.node_errors == []


def test_an_already_cancelled_token_runs_nothing():
    token = CancelToken()
    token.cancel()
    shared: dict = {}
    with pytest.raises(RunCancelled, match=r"cancelled at node 'a'$"):
        chain(token, None).run(shared, cancel=token)
    assert shared == {}


def test_cancel_inside_a_nested_graph_reports_the_nested_graph_step():
    token = CancelToken()
    inner = chain(token, "a")
    inner.name = "inner"
    outer_start = Step("start")
    outer_start >> inner
    errors = Errors()
    with pytest.raises(RunCancelled) as info:
        Graph(start=outer_start).run({}, cancel=token, listeners=[errors])
    assert info.value.node_id == "b"
    assert errors.node_errors == [("Graph", "RunCancelled")]


class SlowRetry(Node):
    def exec(self, prep_res):
        raise ConnectionError("down")


def test_cancel_wakes_a_sleeping_retry_wait():
    token = CancelToken()
    node = SlowRetry(max_retries=5, wait=30, node_id="fetch")
    threading.Timer(0.1, token.cancel, args=("shutdown",)).start()
    started = time.perf_counter()
    with pytest.raises(RunCancelled) as info:
        Graph(start=node).run({}, cancel=token)
    assert time.perf_counter() - started < 5
    assert info.value.node_id == "fetch" and info.value.reason == "shutdown"


class Sleepy(ParallelBatchNode):
    def prep(self, shared):
        self.started = shared["started"]
        return list(range(20))

    def exec(self, item):
        self.started.append(item)
        time.sleep(0.05)
        return item


def test_thread_pool_items_not_started_never_start():
    token = CancelToken()
    shared: dict = {"started": []}
    threading.Timer(0.08, token.cancel).start()
    with pytest.raises(RunCancelled):
        Graph(start=Sleepy(max_workers=2, node_id="pool")).run(shared, cancel=token)
    count = len(shared["started"])
    time.sleep(0.2)
    assert len(shared["started"]) == count  # nothing started after the run ended
    assert 2 <= count < 10


class Items(BatchNode):
    def prep(self, shared):
        return [1, 2, 3, 4]

    def exec(self, item):
        if item == 2:
            self.token.cancel()
        return item


def test_cancel_stops_a_sequential_batch_before_its_next_item():
    token = CancelToken()
    node = Items(node_id="items")
    node.token = token
    seen = []

    class Listener(RunListener):
        def on_batch_item_start(self, *, index, **kwargs):
            seen.append(index)

    with pytest.raises(RunCancelled, match="at node 'items'"):
        Graph(start=node).run({}, cancel=token, listeners=[Listener()])
    assert seen == [0, 1]


class Sets(BatchGraph):
    def prep(self, shared):
        return [{"n": n} for n in range(5)]


class Note(Node):
    def post(self, shared, prep_res, exec_res):
        shared.setdefault("sets", []).append(self.params["n"])
        if self.params["n"] == 1:
            self.token.cancel()


def test_cancel_stops_a_batch_graph_before_its_next_parameter_set():
    token = CancelToken()
    note = Note()
    note.token = token
    shared: dict = {}
    with pytest.raises(RunCancelled):
        Graph(start=Sets(start=note)).run(shared, cancel=token)
    assert shared["sets"] == [0, 1]


def test_a_run_without_a_token_is_unaffected_and_bad_tokens_are_rejected():
    shared: dict = {}
    chain(None, None).run(shared)
    assert shared["ran"] == ["a", "b", "c"]
    with pytest.raises(TypeError, match=r"cancel= must be a kaygraph\.CancelToken"):
        chain(None, None).run({}, cancel=True)


# -- async -------------------------------------------------------------------------------------


class LongCall(AsyncNode):
    async def exec_async(self, prep_res):
        self.params["log"].append("started")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.params["log"].append("cancelled")
            raise


def test_async_cancel_cancels_the_awaited_work():
    token = CancelToken()
    log: list = []
    graph = AsyncGraph(start=LongCall(node_id="llm"))
    graph.set_params({"log": log})
    errors = Errors()

    async def main():
        asyncio.get_running_loop().call_later(0.05, token.cancel, "stop")
        return await graph.run_async({}, cancel=token, listeners=[errors], run_id="ra")

    started = time.perf_counter()
    with pytest.raises(RunCancelled) as info:
        asyncio.run(main())
    assert time.perf_counter() - started < 5
    assert log == ["started", "cancelled"]
    assert (info.value.node_id, info.value.run_id, info.value.reason) == ("llm", "ra", "stop")
    assert errors.node_errors == [("llm", "RunCancelled")] and errors.run_errors == [info.value]


def test_async_cancel_from_another_thread_during_a_gather():
    token = CancelToken()
    log: list = []

    class Many(AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return list(range(4))

        async def exec_async(self, item):
            log.append(("start", item))
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                log.append(("cancelled", item))
                raise

    threading.Timer(0.1, token.cancel).start()
    with pytest.raises(RunCancelled, match="at node 'many'"):
        asyncio.run(AsyncGraph(start=Many(node_id="many")).run_async({}, cancel=token))
    assert sorted(log) == sorted([("start", i) for i in range(4)] + [("cancelled", i) for i in range(4)])


def test_async_cancel_between_nodes_and_in_a_retry_wait():
    token = CancelToken()

    class Flaky(AsyncNode):
        async def exec_async(self, prep_res):
            token.cancel("enough")
            raise ConnectionError("down")

    class After(AsyncNode):
        async def exec_async(self, prep_res):
            raise AssertionError("must not run")

    flaky = Flaky(max_retries=3, wait=30, node_id="flaky")
    flaky >> After()
    started = time.perf_counter()
    with pytest.raises(RunCancelled, match="at node 'flaky': enough"):
        asyncio.run(AsyncGraph(start=flaky).run_async({}, cancel=token))
    assert time.perf_counter() - started < 5


def test_async_sequential_batch_stops_before_the_next_item():
    token = CancelToken()
    seen = []

    class Seq(AsyncBatchNode):
        async def prep_async(self, shared):
            return [0, 1, 2]

        async def exec_async(self, item):
            seen.append(item)
            if item == 1:
                token.cancel()

    with pytest.raises(RunCancelled):
        asyncio.run(AsyncGraph(start=Seq()).run_async({}, cancel=token))
    assert seen == [0, 1]


def test_outer_task_cancellation_is_not_turned_into_run_cancelled():
    token = CancelToken()

    class Forever(AsyncNode):
        async def exec_async(self, prep_res):
            await asyncio.sleep(30)

    async def main():
        task = asyncio.ensure_future(AsyncGraph(start=Forever()).run_async({}, cancel=token))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not token.cancelled


def test_token_repr_callbacks_errors_and_an_unbounded_wait():
    from kaygraph.core.cancel import cancelled_error

    token = CancelToken()
    assert repr(token) == "<CancelToken active>"
    called = []
    forgotten = called.append
    token.add_callback(forgotten)
    token.remove_callback(forgotten)
    token.remove_callback(print)  # never added: ignored

    def fails(which: str):
        def callback(_token):
            called.append(which)
            raise ValueError(which)

        return callback

    token.add_callback(fails("first"))
    token.add_callback(fails("second"))
    with pytest.raises(ValueError, match=r"^first$"):
        token.cancel("enough")
    assert called == ["first", "second"]  # every callback ran, the removed one not at all
    assert repr(token) == "<CancelToken cancelled ('enough')>"
    assert str(cancelled_error(token, None, None)) == "run was cancelled: enough"
    assert str(cancelled_error(token, "n", "r1")) == "run 'r1' was cancelled at node 'n': enough"

    later = CancelToken()
    timer = threading.Timer(0.2, later.cancel)
    timer.start()
    assert later.wait() is True  # no timeout: blocks until cancelled
    timer.join(10)
