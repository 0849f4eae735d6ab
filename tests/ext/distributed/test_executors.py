"""The executor contract, once for every engine: calls come back in order with their values,
errors travel with the worker's traceback, nothing unpicklable is submitted, large inputs go to
the cluster once (Dask, Ray), impossible resources fail at once, and a closed executor refuses work."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from kaygraph import Node
from kaygraph.ext.distributed import (
    ExecutorClosedError,
    RemoteError,
    ResourceUnavailableError,
    UnpicklableError,
    pickling,
)
from kaygraph.ext.distributed.abc import ClusterExecutor

from .conftest import kind_of


def square(value: int) -> int:
    return value * value


def worker_pid(_: Any = None) -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("carries a lock")
        self.lock = threading.Lock()


def fail_unpicklably() -> None:
    raise Unpicklable()


class Client:
    def __init__(self) -> None:
        self._lock = threading.Lock()


class Summarize(Node):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client = Client()

    def exec(self, text: str) -> str:
        return text[:10]


class KeepsClientHome(Summarize):
    remote_exclude = ("client",)


def node_has_client(node: Node, _: Any) -> bool:
    return hasattr(node, "client")


def test_results_come_back_from_other_processes(executor: ClusterExecutor) -> None:
    futures = [executor.submit(square, value) for value in range(20)]

    assert [future.result(timeout=60) for future in futures] == [value * value for value in range(20)]
    assert executor.submit(worker_pid).result(timeout=60) != os.getpid()


def test_an_error_comes_back_with_the_workers_traceback(executor: ClusterExecutor) -> None:
    with pytest.raises(ValueError, match="bad item") as caught:
        executor.submit(fail, "bad item").result(timeout=60)

    notes = "\n".join(caught.value.__notes__)
    assert "raised on worker" in notes
    assert "in fail" in notes  # the worker's frame, which a pickled traceback would have lost


def test_an_exception_that_does_not_pickle_becomes_a_remote_error(executor: ClusterExecutor) -> None:
    with pytest.raises(RemoteError, match="Unpicklable: carries a lock") as caught:
        executor.submit(fail_unpicklably).result(timeout=60)

    assert caught.value.remote_type.endswith("Unpicklable")


def test_an_unpicklable_node_fails_before_submitting_naming_the_attribute_path(
    executor: ClusterExecutor,
) -> None:
    tasks_before = executor.stats["tasks"]

    with pytest.raises(UnpicklableError) as caught:
        executor.submit(node_has_client, Summarize(), [(0, "text")])

    error = caught.value
    assert error.path == "Summarize.client._lock"
    assert error.node_id == "Summarize"
    message = str(error)
    assert "_thread.lock" in message and "remote_exclude = ('client',)" in message
    assert "Nothing was submitted" in message
    assert executor.stats["tasks"] == tasks_before


def test_an_unpicklable_item_is_named_by_its_index(executor: ClusterExecutor) -> None:
    items = [(0, "fine"), (1, {"rows": (row for row in range(3))})]

    with pytest.raises(
        UnpicklableError, match=r"item 1 of node 'KeepsClientHome'.*items\[1\]\['rows'\] is a generator"
    ):
        executor.submit(node_has_client, KeepsClientHome(), items)


def test_remote_exclude_keeps_an_attribute_on_the_driver(executor: ClusterExecutor) -> None:
    node = KeepsClientHome()

    assert executor.submit(node_has_client, node, [(0, "x")]).result(timeout=60) is False
    assert hasattr(node, "client")  # the driver's node is untouched


def test_a_large_input_goes_to_the_cluster_once(make_executor: Any, executor: ClusterExecutor) -> None:
    ex = make_executor(kind_of(executor), share_threshold=1 << 20)
    big = b"k" * (4 << 20)

    lengths = [ex.submit(len, big).result(timeout=60) for _ in range(6)]

    assert lengths == [len(big)] * 6
    if kind_of(executor) == "process":  # no object store: it travels with each task, and says so
        assert ex.stats["shared_objects"] == 0
        assert ex.stats["payload_bytes"] > 6 * len(big)
        return
    assert ex.stats["shared_objects"] == 1
    assert ex.stats["shared_bytes"] == len(big)
    assert ex.stats["payload_bytes"] < 6 * 4096  # the payloads carry a reference, not 4 MB each


def test_leaves_at_the_share_threshold_are_split_off_and_nothing_else() -> None:
    threshold = 1 << 16
    big, text = b"b" * threshold, "t" * threshold
    many_small = [b"s" * 1000 for _ in range(100)]  # 100 kB in all, each leaf far below the threshold
    cases = [
        ((len, ([big, many_small, text, big],), None), [big, text]),  # big once, though used twice
        ((len, (many_small,), None), []),  # a pickle over the threshold, with nothing to share
        ((len, ([1, "x"],), None), []),
    ]
    for call, expected in cases:
        shared: list[Any] = []

        payload = pickling.dumps(call, share_threshold=threshold, shared=shared)

        assert shared == expected and all(a is b for a, b in zip(shared, expected, strict=True))
        assert pickling.loads(payload, tuple(shared)) == call


def test_impossible_resources_fail_at_once_naming_the_node(executor: ClusterExecutor) -> None:
    started = time.monotonic()

    with pytest.raises(ResourceUnavailableError, match="node 'Summarize' asks for resources") as caught:
        executor.submit(
            node_has_client, KeepsClientHome(node_id="Summarize"), [(0, "x")], resources={"GPU": 1}
        )

    assert caught.value.resources == {"GPU": 1}
    assert time.monotonic() - started < 10


def test_resources_the_workers_have_are_accepted(executor: ClusterExecutor) -> None:
    assert executor.submit(square, 3, resources={"CPU": 1, "memory": 1e6}).result(timeout=60) == 9


def test_a_closed_executor_refuses_work(make_executor: Any, executor: ClusterExecutor) -> None:
    ex = make_executor(kind_of(executor))
    ex.close()

    with pytest.raises(ExecutorClosedError, match="closed"):
        ex.submit(square, 2)


def test_describe_names_the_engine_and_its_workers(executor: ClusterExecutor) -> None:
    lines = executor.describe()

    assert lines["executor"] == kind_of(executor)
    assert lines["workers"] == "2"
    assert executor.workers == 2
    assert executor.max_in_flight == 4
    assert executor.chunk_size(2000) == 250 and executor.chunk_size(3) == 1


def test_an_engine_future_cancelled_twice_notifies_and_cancels_on_the_engine_once() -> None:
    """The caller cancels, then the engine's own "task cancelled" callback cancels again: the
    second cancel is a no-op (it raised 'Future in unexpected state' inside Ray's callback)."""
    from concurrent.futures import wait

    from kaygraph.ext.distributed.base import EngineFuture

    calls: list[str] = []
    future = EngineFuture(lambda: calls.append("engine"))
    assert future.cancel() is True
    assert future.cancel() is True
    assert calls == ["engine"]
    done, _ = wait([future], timeout=1)
    assert done == {future} and future.cancelled()
