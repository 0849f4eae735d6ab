"""Graphs give the same results on every executor as in-process: batch, parallel batch, async
batch, async parallel batch, remote nodes, nested and batch graphs, and ``run_many``. Written
once, run on the process pool, the Dask cluster and Ray (see conftest)."""

from __future__ import annotations

import asyncio
import copy
import os
from typing import Any

import pytest

from kaygraph import (
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchNode,
    BatchGraph,
    BatchNode,
    Graph,
    Node,
    ParallelBatchNode,
)
from kaygraph.ext.distributed import run_many
from kaygraph.ext.distributed.abc import ClusterExecutor

DRIVER_PID = os.getpid()


def score(number: int, attempt: int) -> dict[str, int]:
    return {"number": number, "square": number * number, "attempt": attempt}


class Squares(BatchNode):
    """Items fail their first attempt when odd: retries must give the same answer everywhere."""

    def prep(self, shared: dict[str, Any]) -> list[int]:
        return shared["numbers"]

    def exec(self, number: int) -> dict[str, int]:
        if number % 2 and self.cur_retry == 0:
            raise ValueError(f"flaky {number}")
        return score(number, self.cur_retry)

    def post(self, shared: dict[str, Any], prep_res: Any, results: list[Any]) -> None:
        shared["squares"] = results


class ParallelSquares(ParallelBatchNode, Squares):
    pass


class Where(Node):
    """Runs remotely: reports that it did (the process id differs from the driver's)."""

    remote = True

    def prep(self, shared: dict[str, Any]) -> int:
        return len(shared["squares"])

    def exec(self, count: int) -> dict[str, Any]:
        return {"count": count, "remote": os.getpid() != DRIVER_PID}

    def post(self, shared: dict[str, Any], prep_res: Any, result: dict[str, Any]) -> None:
        shared["where"] = result


class Total(Node):
    def prep(self, shared: dict[str, Any]) -> list[dict[str, int]]:
        return shared["squares"]

    def exec(self, rows: list[dict[str, int]]) -> int:
        return sum(row["square"] for row in rows)

    def post(self, shared: dict[str, Any], prep_res: Any, total: int) -> None:
        shared["total"] = total


def build_pipeline(parallel: bool = False) -> Graph:
    """Squares (batch) >> a nested graph (remote Where >> Total)."""
    inner_start = Where()
    inner_start >> Total()
    inner = Graph(inner_start, name="report")
    squares = ParallelSquares(max_retries=2, max_workers=3) if parallel else Squares(max_retries=2)
    squares >> inner
    return Graph(squares, name="pipeline")


class Scaled(Node):
    """Inside a batch graph: each parameter set scales the numbers, remotely."""

    remote = True

    def prep(self, shared: dict[str, Any]) -> tuple[int, list[int]]:
        return self.params["factor"], shared["numbers"]

    def exec(self, job: tuple[int, list[int]]) -> list[int]:
        factor, numbers = job
        return [factor * number for number in numbers]

    def post(self, shared: dict[str, Any], prep_res: Any, scaled: list[int]) -> None:
        shared.setdefault("scaled", {})[self.params["factor"]] = scaled


class Factors(BatchGraph):
    def prep(self, shared: dict[str, Any]) -> list[dict[str, int]]:
        return [{"factor": factor} for factor in (2, 3, 5)]


class AsyncSquares(AsyncBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return shared["numbers"]

    async def exec_async(self, number: int) -> dict[str, int]:
        await asyncio.sleep(0)
        if number % 2 and self.cur_retry == 0:
            raise ValueError(f"flaky {number}")
        return score(number, self.cur_retry)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, results: list[Any]) -> None:
        shared["squares"] = results


class AsyncParallelSquares(AsyncParallelBatchNode, AsyncSquares):
    pass


class AsyncWhere(AsyncNode):
    remote = True

    async def prep_async(self, shared: dict[str, Any]) -> int:
        return len(shared["squares"])

    async def exec_async(self, count: int) -> dict[str, Any]:
        return {"count": count, "remote": os.getpid() != DRIVER_PID}

    async def post_async(self, shared: dict[str, Any], prep_res: Any, result: dict[str, Any]) -> None:
        shared["where"] = result


def build_async(parallel: bool) -> AsyncGraph:
    squares = AsyncParallelSquares(max_retries=2) if parallel else AsyncSquares(max_retries=2)
    squares >> AsyncWhere()
    return AsyncGraph(squares, name="async-pipeline")


def numbers() -> dict[str, Any]:
    return {"numbers": list(range(23))}


def local_where(shared: dict[str, Any]) -> dict[str, Any]:
    expected = copy.deepcopy(shared)
    expected["where"]["remote"] = True  # the one thing that differs: where it ran
    return expected


@pytest.mark.parametrize("parallel", [False, True], ids=["batch", "parallel-batch"])
def test_batch_nodes_nested_graphs_and_remote_nodes_match_a_local_run(
    executor: ClusterExecutor, parallel: bool
) -> None:
    local = numbers()
    build_pipeline(parallel).run(local)
    distributed = numbers()

    build_pipeline(parallel).run(distributed, executor=executor)

    assert distributed == local_where(local)
    assert [row["attempt"] for row in distributed["squares"]] == [number % 2 for number in range(23)]


@pytest.mark.parametrize("parallel", [False, True], ids=["async-batch", "async-parallel-batch"])
def test_async_batch_nodes_match_a_local_run(executor: ClusterExecutor, parallel: bool) -> None:
    local = numbers()
    asyncio.run(build_async(parallel).run_async(local))
    distributed = numbers()

    asyncio.run(build_async(parallel).run_async(distributed, executor=executor))

    assert distributed == local_where(local)


def test_batch_graphs_with_remote_nodes_match_a_local_run(executor: ClusterExecutor) -> None:
    local = numbers()
    Factors(Scaled(), name="factors").run(local)
    distributed = numbers()

    Factors(Scaled(), name="factors").run(distributed, executor=executor)

    assert distributed == local
    assert distributed["scaled"][5][:3] == [0, 5, 10]


class Explode(Node):
    def exec(self, _: Any) -> None:
        raise KeyError("no such invoice")


def test_run_many_matches_local_runs_and_reports_each_failure(executor: ClusterExecutor) -> None:
    inputs = [{"numbers": list(range(size))} for size in (3, 7, 0, 12)]
    expected = []
    for shared in copy.deepcopy(inputs):
        build_pipeline().run(shared)
        expected.append(local_where(shared))

    outcomes = run_many(build_pipeline(), inputs, executor=executor, max_in_flight=2)

    assert [outcome.index for outcome in outcomes] == [0, 1, 2, 3]
    assert all(outcome.ok for outcome in outcomes)
    assert [outcome.shared for outcome in outcomes] == expected


def test_run_many_keeps_going_after_a_failed_run(executor: ClusterExecutor) -> None:
    graph = Graph(Explode(), name="explode")
    good = build_pipeline()

    failed = run_many(graph, [{"n": 1}], executor=executor)[0]
    fine = run_many(good, [numbers(), numbers()], executor=executor)

    assert isinstance(failed.error, KeyError) and "no such invoice" in str(failed.error)
    assert "raised on worker" in "\n".join(failed.error.__notes__)
    assert [outcome.ok for outcome in fine] == [True, True]
