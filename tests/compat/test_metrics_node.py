"""MetricsNode as KayGraph 0.3 programs use it: constructor, ``.metrics``, ``get_stats()``."""

from __future__ import annotations

import pytest

from kaygraph import Graph, MetricsNode
from kaygraph.core.exceptions import GraphDefinitionError

STATS_03 = {
    "total_executions",
    "success_rate",
    "avg_execution_time",
    "min_execution_time",
    "max_execution_time",
    "total_retries",
}


class Square(MetricsNode):
    def prep(self, shared):
        return shared["x"]

    def exec(self, x):
        if x < 0:
            raise ValueError("negative")
        if x == 3 and self.cur_retry < 2:
            raise RuntimeError("flaky")
        return x * x

    def post(self, shared, prep_res, exec_res):
        shared["y"] = exec_res


def test_stats_before_any_run_say_no_executions() -> None:
    assert Square().get_stats() == {"status": "no_executions"}
    empty = {"execution_times": [], "retry_counts": [], "success_count": 0, "error_count": 0}
    assert Square().metrics == empty


def test_positional_arguments_follow_collect_metrics_then_node_arguments() -> None:
    node = Square(True, 3, 0.5)
    quiet = Square(False)

    assert (node.collect_metrics, node.max_retries, node.wait) == (True, 3, 0.5)
    assert quiet.collect_metrics is False and quiet.max_retries == 1
    assert Square(max_retries=2, node_id="sq").node_id == "sq"


def test_every_step_of_every_run_is_counted_with_0_3_keys() -> None:
    node = Square(True, 3)
    graph = Graph(start=node)

    for x in (1, 2, 3):
        graph.run({"x": x})
    with pytest.raises(ValueError, match="negative"):
        graph.run({"x": -1})

    stats = node.get_stats()
    assert set(stats) >= STATS_03
    assert stats["total_executions"] == 4
    assert stats["success_rate"] == pytest.approx(3 / 4)
    assert stats["total_retries"] == 2 + 2  # x=3 needed two retries; x=-1 used all three attempts
    assert 0 < stats["min_execution_time"] <= stats["avg_execution_time"] <= stats["max_execution_time"]
    assert (stats["successes"], stats["failures"], stats["node_id"]) == (3, 1, "Square")
    assert node.metrics["success_count"] == 3 and node.metrics["error_count"] == 1
    assert node.metrics["retry_counts"] == [0, 0, 2, 2]
    assert len(node.metrics["execution_times"]) == 4


def test_collect_metrics_false_records_nothing() -> None:
    node = Square(collect_metrics=False)
    shared = {"x": 4}
    Graph(start=node).run(shared)

    assert shared["y"] == 16
    assert node.get_stats() == {"status": "no_executions"}


def test_keep_bounds_the_lists_but_not_the_totals() -> None:
    node = Square(keep=2)
    graph = Graph(start=node)
    for x in (0, 1, 2, 4, 5):
        graph.run({"x": x})

    assert len(node.metrics["execution_times"]) == 2 and len(node.metrics["retry_counts"]) == 2
    assert node.get_stats()["total_executions"] == 5
    with pytest.raises(GraphDefinitionError, match="keep must be an int >= 1 or None"):
        Square(keep=0)


def test_reset_stats_empties_the_lists_in_place() -> None:
    node = Square()
    times = node.metrics["execution_times"]
    node.run({"x": 2})
    assert times and node.get_stats()["total_executions"] == 1

    node.reset_stats()
    assert times == [] and node.get_stats() == {"status": "no_executions"}
