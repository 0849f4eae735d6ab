"""The executor seam: batch items and remote nodes go through executor.submit(run_exec_chunk, ...),
one attempt per item; retries, fallbacks, events and cancellation stay in the caller."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from kaygraph import (
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchNode,
    BatchNode,
    CancelToken,
    Graph,
    Node,
    ParallelBatchNode,
    RunCancelled,
    RunListener,
)
from kaygraph.core.executor import Executor, InlineExecutor, run_exec_chunk


class Recording:
    """Runs calls on a thread pool and records every submit."""

    def __init__(self, max_workers=4, chunk=None, max_in_flight=None, supports_resources=False):
        self.pool = ThreadPoolExecutor(max_workers=max_workers)
        self.calls: list[tuple[str, list[int], dict]] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self._chunk = chunk
        self.max_in_flight = max_in_flight
        self.supports_resources = supports_resources

    def chunk_size(self, n_items):
        return self._chunk or 1

    def submit(self, fn, /, *args, **kwargs):
        node, items = args
        assert fn is run_exec_chunk
        assert node._run_ctx is None and node.successors == {}
        with self.lock:
            self.calls.append((type(node).__name__, [index for index, _ in items], kwargs))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

        def call():
            try:
                return fn(*args)
            finally:
                with self.lock:
                    self.in_flight -= 1

        return self.pool.submit(call)


class Square(BatchNode):
    def prep(self, shared):
        shared["prep_thread"] = threading.current_thread().name
        return shared["items"]

    def exec(self, item):
        time.sleep(0.001)
        return (item * item, threading.current_thread().name)

    def post(self, shared, prep_res, exec_res):
        shared["post_thread"] = threading.current_thread().name
        shared["squares"] = [value for value, _ in exec_res]
        shared["exec_threads"] = {name for _, name in exec_res}


def test_executor_is_a_protocol_thread_pools_satisfy():
    assert isinstance(ThreadPoolExecutor(), Executor)
    assert isinstance(InlineExecutor(), Executor)
    assert not isinstance(object(), Executor)


def test_run_exec_chunk_returns_one_outcome_per_item():
    class Half(Node):
        def exec(self, item):
            return 10 // item

    outcomes = run_exec_chunk(Half(), [(0, 5), (1, 0), (2, 2)])
    assert outcomes[0] == ("ok", 2) and outcomes[2] == ("ok", 5)
    assert outcomes[1][0] == "error" and isinstance(outcomes[1][1], ZeroDivisionError)


@pytest.mark.parametrize("node_class", [Square, type("ParSquare", (ParallelBatchNode, Square), {})])
def test_batch_items_run_on_the_executor_prep_and_post_in_the_caller(node_class):
    executor = Recording()
    shared = {"items": [1, 2, 3, 4, 5]}
    Graph(start=node_class()).run(shared, executor=executor)
    main = threading.current_thread().name
    assert shared["squares"] == [1, 4, 9, 16, 25]
    assert shared["prep_thread"] == main and shared["post_thread"] == main
    assert main not in shared["exec_threads"]
    assert sorted(index for _, indices, _ in executor.calls for index in indices) == [0, 1, 2, 3, 4]
    assert all(len(indices) == 1 for _, indices, _ in executor.calls)


def test_chunk_size_from_the_executor_and_from_the_node():
    executor = Recording(chunk=2)
    Graph(start=Square()).run({"items": list(range(5))}, executor=executor)
    assert sorted(indices for _, indices, _ in executor.calls) == [[0, 1], [2, 3], [4]]

    class Chunky(Square):
        chunk_size = 3

    executor = Recording(chunk=2)
    shared = {"items": list(range(5))}
    Graph(start=Chunky()).run(shared, executor=executor)
    assert sorted(indices for _, indices, _ in executor.calls) == [[0, 1, 2], [3, 4]]
    assert shared["squares"] == [0, 1, 4, 9, 16]


def test_in_flight_limit_from_the_node_and_resources_when_supported():
    class Gpu(ParallelBatchNode, Square):
        resources = {"GPU": 1}

    executor = Recording(max_workers=8, supports_resources=True)
    Graph(start=Gpu(max_workers=2)).run({"items": list(range(8))}, executor=executor)
    assert executor.peak <= 2
    assert all(kwargs == {"resources": {"GPU": 1}} for _, _, kwargs in executor.calls)
    plain = Recording()
    Graph(start=Gpu()).run({"items": [1]}, executor=plain)
    assert plain.calls[0][2] == {}  # an executor without supports_resources never gets them


class Flaky(BatchNode):
    def prep(self, shared):
        return [0, 1, 2]

    def exec(self, item):
        if item == 1 and self.cur_retry < 2:
            raise ConnectionError(f"attempt {self.cur_retry}")
        return item

    def post(self, shared, prep_res, exec_res):
        shared["out"] = exec_res


class Retries(RunListener):
    def __init__(self):
        self.retries, self.items = [], []

    def on_retry(self, *, attempt, error, wait, **kwargs):
        self.retries.append((attempt, str(error), wait))

    def on_batch_item_end(self, *, index, result, error, **kwargs):
        self.items.append((index, result, error))


def test_failed_items_are_resubmitted_by_the_caller_after_wait():
    executor = Recording()
    listener = Retries()
    shared: dict = {}
    started = time.perf_counter()
    Graph(start=Flaky(max_retries=3, wait=0.05)).run(shared, executor=executor, listeners=[listener])
    assert time.perf_counter() - started >= 0.1
    assert shared["out"] == [0, 1, 2]
    assert [indices for _, indices, _ in executor.calls].count([1]) == 3
    assert listener.retries == [(1, "attempt 0", 0.05), (2, "attempt 1", 0.05)]
    assert sorted(listener.items) == [(0, 0, None), (1, 1, None), (2, 2, None)]


def test_a_chunk_holds_items_of_one_attempt_so_cur_retry_is_right_for_each():
    seen = []

    class Odd(BatchNode):
        def prep(self, shared):
            return list(range(6))

        def exec(self, item):
            seen.append((item, self.cur_retry))
            if item % 2 and self.cur_retry == 0:
                raise ConnectionError("first attempt of an odd item")
            return item

    executor = Recording(max_workers=1, chunk=4)
    Graph(start=Odd(max_retries=2, wait=0)).run({}, executor=executor)
    assert sorted(seen) == sorted([(i, 0) for i in range(6)] + [(i, 1) for i in (1, 3, 5)])


def test_a_due_retry_goes_before_the_items_still_waiting():
    """As a local BatchNode retries an item at once, a broken item fails the batch before the
    items behind it are started (one in flight, so the submit order is the whole story)."""

    class FirstBroken(BatchNode):
        def prep(self, shared):
            return list(range(6))

        def exec(self, item):
            if item == 0:
                raise ConnectionError("item 0 is broken")
            return item

    executor = Recording(max_workers=1, max_in_flight=1)
    with pytest.raises(ConnectionError):
        Graph(start=FirstBroken(max_retries=3, wait=0)).run({}, executor=executor)
    assert [indices for _, indices, _ in executor.calls] == [[0], [0], [0]]


def test_fallback_runs_in_the_caller_after_the_last_attempt():
    class Fallback(Flaky):
        def exec_fallback(self, prep_res, exc):
            return ("fallback", prep_res, str(exc), threading.current_thread().name)

    shared: dict = {}
    Graph(start=Fallback(max_retries=2)).run(shared, executor=Recording())
    assert shared["out"][1] == ("fallback", 1, "attempt 1", threading.current_thread().name)


def test_last_failure_propagates_with_its_attempts_and_cancels_the_rest():
    class Boom(BatchNode):
        def prep(self, shared):
            return [0, 1]

        def exec(self, item):
            raise ValueError(f"item {item}")

    with pytest.raises(ValueError, match="item") as info:
        Graph(start=Boom(max_retries=2)).run({}, executor=Recording())
    assert info.value.kaygraph_attempts == 2
    assert "failed after 2 attempt(s)" in "\n".join(info.value.__notes__)


class BrokenFutures:
    """An executor whose futures fail (e.g. a worker that died): each counts as a failed attempt."""

    def __init__(self, fail_times):
        self.fail_times = fail_times
        self.submits = 0

    def submit(self, fn, /, *args):
        self.submits += 1
        future: Future = Future()
        if self.submits <= self.fail_times:
            future.set_exception(OSError("worker lost"))
        else:
            future.set_result(fn(*args))
        return future


def test_an_executor_failing_a_chunk_counts_as_one_attempt():
    shared: dict = {"items": [3]}
    Graph(start=Square(max_retries=2)).run(shared, executor=BrokenFutures(1))
    assert shared["squares"] == [9]
    with pytest.raises(OSError, match="worker lost"):
        Graph(start=Square(max_retries=2)).run({"items": [3]}, executor=BrokenFutures(5))


class Held:
    """Records every submit and runs it at once, but holds back the futures of chunks that
    succeeded until ``release()``: results that come back while the caller is busy elsewhere."""

    def __init__(self):
        self.submitted: list[list[int]] = []
        self.held: list[tuple[Future, list]] = []

    def submit(self, fn, /, *args):
        self.submitted.append([index for index, _ in args[1]])
        future: Future = Future()
        outcomes = fn(*args)
        if all(status == "ok" for status, _ in outcomes):
            self.held.append((future, outcomes))
        else:
            future.set_result(outcomes)
        return future

    def release(self):
        for future, outcomes in self.held:
            future.set_result(outcomes)


class ItemEnds(RunListener):
    def __init__(self):
        self.ends: dict[int, object] = {}

    def on_batch_item_end(self, *, index, result, error, **kwargs):
        self.ends[index] = result if error is None else error


class ThirdFails(BatchNode):
    def prep(self, shared):
        return list(range(6))

    def exec(self, item):
        if item == 3:
            raise ValueError("item 3")
        return item * 10

    def exec_fallback(self, prep_res, exc):
        self.executor.release()  # the other items come back while the fallback runs
        raise exc


class AsyncThirdFails(AsyncBatchNode, ThirdFails):
    async def prep_async(self, shared):
        return ThirdFails.prep(self, shared)

    async def exec_async(self, item):
        return ThirdFails.exec(self, item)

    async def exec_fallback_async(self, prep_res, exc):
        return ThirdFails.exec_fallback(self, prep_res, exc)


@pytest.mark.parametrize("node_class", [ThirdFails, AsyncThirdFails])
def test_items_back_when_a_batch_fails_are_delivered_before_the_failure(node_class):
    """Items whose results came back are reported finished (so a checkpointer keeps them and a
    resume does not run them again), even when they come back while another item fails."""
    executor, listener = Held(), ItemEnds()
    node = node_class(node_id="batch")
    node.executor = executor
    graph = (AsyncGraph if node_class is AsyncThirdFails else Graph)(start=node)
    with pytest.raises(ValueError, match="item 3"):
        if node_class is AsyncThirdFails:
            asyncio.run(graph.run_async({}, executor=executor, listeners=[listener]))
        else:
            graph.run({}, executor=executor, listeners=[listener])
    assert sorted(executor.submitted) == [[index] for index in range(6)]
    failure = listener.ends.pop(3)
    assert isinstance(failure, ValueError)
    assert listener.ends == {0: 0, 1: 10, 2: 20, 4: 40, 5: 50}


@pytest.mark.parametrize("run_async", [False, True])
def test_items_back_with_the_failing_one_are_delivered_before_its_fallback(run_async):
    """Every future that finished together with the failing one is delivered first, whatever
    order the wait returns them in."""

    class OneBad(AsyncBatchNode if run_async else BatchNode):
        def prep(self, shared):
            return list(range(30))

        async def prep_async(self, shared):
            return list(range(30))

        def exec(self, item):
            if item == 17:
                raise ValueError("item 17")
            return item

        async def exec_async(self, item):
            return self.exec(item)

    listener = ItemEnds()
    graph = (AsyncGraph if run_async else Graph)(start=OneBad())
    with pytest.raises(ValueError, match="item 17"):
        if run_async:
            asyncio.run(graph.run_async({}, executor=InlineExecutor(), listeners=[listener]))
        else:
            graph.run({}, executor=InlineExecutor(), listeners=[listener])
    assert isinstance(listener.ends.pop(17), ValueError)
    assert listener.ends == {index: index for index in range(30) if index != 17}


def test_an_executor_raising_on_submit_fails_the_run_with_that_error():
    class Refuses:
        def submit(self, fn, /, *args):
            raise RuntimeError("cluster unreachable")

    with pytest.raises(RuntimeError, match="cluster unreachable"):
        Graph(start=Square()).run({"items": [1]}, executor=Refuses())
    with pytest.raises(TypeError, match="executor= must have a submit"):
        Graph(start=Square()).run({"items": [1]}, executor=object())


class Remote(Node):
    remote = True

    def prep(self, shared):
        return shared["x"]

    def exec(self, x):
        return (x + 1, threading.current_thread().name)

    def post(self, shared, prep_res, exec_res):
        shared["y"], shared["thread"] = exec_res


class Local(Remote):
    remote = False


def test_remote_nodes_run_exec_on_the_executor_others_stay_inline():
    executor = Recording()
    local = Local()
    remote = Remote()
    local >> remote
    shared = {"x": 1}
    Graph(start=local).run(shared, executor=executor)
    assert shared["y"] == 2 and shared["thread"] != threading.current_thread().name
    assert [(name, indices) for name, indices, _ in executor.calls] == [("Remote", [0])]
    shared = {"x": 1}
    Graph(start=Remote()).run(shared)  # without an executor: inline, as always
    assert shared["thread"] == threading.current_thread().name


def test_cancel_stops_resubmitting_and_cancels_pending_futures():
    token = CancelToken()

    class Slow(BatchNode):
        def prep(self, shared):
            return list(range(10))

        def exec(self, item):
            time.sleep(0.05)
            return item

    executor = Recording(max_workers=1)
    threading.Timer(0.08, token.cancel).start()
    with pytest.raises(RunCancelled, match="at node 'slow'"):
        Graph(start=Slow(node_id="slow")).run({}, executor=executor, cancel=token)
    time.sleep(0.15)
    executed = executor.pool.submit(lambda: None)
    executed.result(2)
    assert len(executor.calls) == 10  # all submitted at once (no limit) ...
    # ... but the queued ones were cancelled: the single worker is free again almost at once


def test_inline_executor_equals_no_executor():
    shared_a = {"items": [1, 2, 3]}
    shared_b = {"items": [1, 2, 3]}
    Graph(start=Square()).run(shared_a, executor=InlineExecutor())
    Graph(start=Square()).run(shared_b)
    assert shared_a["squares"] == shared_b["squares"] == [1, 4, 9]


# -- async -------------------------------------------------------------------------------------


class AsyncSquare(AsyncBatchNode):
    async def prep_async(self, shared):
        return shared["items"]

    async def exec_async(self, item):
        if item == 2 and self.cur_retry == 0:
            raise ConnectionError("flaky")
        await asyncio.sleep(0)
        return item * item

    async def post_async(self, shared, prep_res, exec_res):
        shared["squares"] = exec_res


@pytest.mark.parametrize(
    "node_class", [AsyncSquare, type("ParAsyncSquare", (AsyncParallelBatchNode, AsyncSquare), {})]
)
@pytest.mark.parametrize("executor_class", [Recording, InlineExecutor])
def test_async_batch_items_run_on_the_executor_with_retries(node_class, executor_class):
    executor = executor_class()
    listener = Retries()
    shared = {"items": [1, 2, 3]}
    asyncio.run(
        AsyncGraph(start=node_class(max_retries=2)).run_async(
            shared, executor=executor, listeners=[listener]
        )
    )
    assert shared["squares"] == [1, 4, 9]
    assert [attempt for attempt, _, _ in listener.retries] == [1]
    if isinstance(executor, Recording):
        assert sorted(i for _, indices, _ in executor.calls for i in indices) == [0, 1, 1, 2]


def test_async_remote_node_and_fallback():
    class RemoteAsync(AsyncNode):
        remote = True

        async def exec_async(self, prep_res):
            raise ValueError("no")

        async def exec_fallback_async(self, prep_res, exc):
            return f"fell back after {exc}"

        async def post_async(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    executor = Recording()
    shared: dict = {}
    asyncio.run(AsyncGraph(start=RemoteAsync(max_retries=2)).run_async(shared, executor=executor))
    assert shared["out"] == "fell back after no"
    assert len(executor.calls) == 2


def test_async_cancel_cancels_the_executor_futures():
    token = CancelToken()
    futures: list[Future] = []

    class Never:
        def submit(self, fn, /, *args):
            future: Future = Future()  # never completes unless cancelled
            futures.append(future)
            return future

    class Items(AsyncBatchNode):
        async def prep_async(self, shared):
            return [1, 2]

    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(RunCancelled):
        asyncio.run(AsyncGraph(start=Items(node_id="items")).run_async({}, executor=Never(), cancel=token))
    assert len(futures) == 2 and all(future.cancelled() for future in futures)


def test_the_inline_executor_runs_at_once_and_keeps_the_error():
    executor = InlineExecutor()
    assert repr(executor) == "InlineExecutor()"
    assert executor.submit(lambda a, b: a + b, 2, b=3).result() == 5
    error = ValueError("kept")

    def fails():
        raise error

    assert executor.submit(fails).exception() is error
