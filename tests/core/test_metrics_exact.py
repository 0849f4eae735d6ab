"""MetricsNode's numbers are exact: on a fake clock that only the node's own work moves, every
statistic is known in advance (no sleeping, nothing depends on the machine's speed)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kaygraph import Graph, MetricsNode


class FakeClock:
    """``time.perf_counter`` stand-in: it moves only when a node says it worked."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


class Work(MetricsNode):
    """Takes ``shared["cost"]`` seconds of fake time; fails its first ``shared["flaky"]`` attempts,
    and every attempt when the cost is negative."""

    def __init__(self, clock: FakeClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock

    def prep(self, shared: Any) -> Any:
        return shared

    def exec(self, shared: Any) -> Any:
        self.clock.now += abs(shared["cost"])
        if shared["cost"] < 0 or self.cur_retry < shared.get("flaky", 0):
            raise RuntimeError("failed attempt")
        return shared["cost"]


def run_all(node: Work, costs: list[float], **extra: Any) -> None:
    graph = Graph(start=node)
    for cost in costs:
        shared = {"cost": cost, **extra}
        if cost < 0:
            with pytest.raises(RuntimeError):
                graph.run(shared)
        else:
            graph.run(shared)


def test_every_statistic_is_exact(clock: FakeClock) -> None:
    node = Work(clock, node_id="work")
    run_all(node, [3.0, 1.0, 2.0, 5.0, -4.0])  # four successes, one failure (4 s, one attempt)

    stats = node.get_stats()

    assert stats == {
        "total_executions": 5,
        "success_rate": 4 / 5,
        "avg_execution_time": 15.0 / 5,
        "min_execution_time": 1.0,
        "max_execution_time": 5.0,
        "total_retries": 0,
        "node_id": "work",
        "successes": 4,
        "failures": 1,
        "total_time": 15.0,
        "p50_time": 3.0,  # sorted 1, 2, 3, 4, 5: the middle one
        "p95_time": 5.0,
    }
    assert node.metrics["execution_times"] == [3.0, 1.0, 2.0, 5.0, 4.0]
    assert (node.metrics["success_count"], node.metrics["error_count"]) == (4, 1)


def test_percentiles_pick_the_right_rank(clock: FakeClock) -> None:
    node = Work(clock)
    run_all(node, [float(cost) for cost in range(1, 21)])  # 1 .. 20 seconds
    stats = node.get_stats()
    assert (stats["p50_time"], stats["p95_time"]) == (11.0, 20.0)  # ranks 10 and 19 of 0..19
    assert (stats["min_execution_time"], stats["max_execution_time"]) == (1.0, 20.0)


def test_a_single_execution_is_its_own_min_max_and_percentiles(clock: FakeClock) -> None:
    node = Work(clock)
    run_all(node, [2.5])
    stats = node.get_stats()
    assert stats["min_execution_time"] == stats["max_execution_time"] == stats["p50_time"] == 2.5
    assert stats["p95_time"] == stats["avg_execution_time"] == stats["total_time"] == 2.5


def test_retries_are_counted_per_step_and_their_time_belongs_to_the_step(clock: FakeClock) -> None:
    node = Work(clock, max_retries=3)
    run_all(node, [1.0], flaky=2)  # three attempts of 1 s each
    run_all(node, [2.0])
    stats = node.get_stats()
    assert node.metrics["retry_counts"] == [2, 0]
    assert stats["total_retries"] == 2
    assert node.metrics["execution_times"] == [3.0, 2.0]
    assert stats["max_execution_time"] == 3.0


def test_keep_drops_the_oldest_durations_but_the_totals_stay_exact(clock: FakeClock) -> None:
    node = Work(clock, keep=2)
    run_all(node, [4.0, 1.0, 2.0, 3.0])
    stats = node.get_stats()
    assert node.metrics["execution_times"] == [2.0, 3.0]  # the two newest
    assert len(node.metrics["retry_counts"]) == 2
    assert (stats["total_executions"], stats["total_time"]) == (4, 10.0)
    assert (stats["min_execution_time"], stats["max_execution_time"]) == (1.0, 4.0)  # exact, not kept
    assert stats["p50_time"] == 3.0  # percentiles are over the kept durations


def test_keep_exactly_reached_keeps_every_duration(clock: FakeClock) -> None:
    node = Work(clock, keep=3)
    run_all(node, [1.0, 2.0, 3.0])
    assert node.metrics["execution_times"] == [1.0, 2.0, 3.0]
    run_all(node, [4.0])
    assert node.metrics["execution_times"] == [2.0, 3.0, 4.0]


def test_reset_starts_the_statistics_over(clock: FakeClock) -> None:
    node = Work(clock)
    run_all(node, [9.0])
    node.reset_stats()
    run_all(node, [1.0])
    stats = node.get_stats()
    assert (stats["total_executions"], stats["max_execution_time"], stats["min_execution_time"]) == (
        1,
        1.0,
        1.0,
    )
