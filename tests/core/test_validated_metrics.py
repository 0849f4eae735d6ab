"""ValidatedNode and MetricsNode."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kaygraph import Graph, MetricsNode, ValidatedNode, ValidationError


class Answer(ValidatedNode):
    def prep(self, shared):
        return shared["question"]

    def validate_input(self, question):
        if not isinstance(question, str) or not question.strip():
            raise ValidationError(f"question must be a non-empty string, got {question!r}")
        return question.strip()

    def exec(self, question):
        return {"answer": question.upper()} if question != "bad" else {"oops": 1}

    def validate_output(self, result):
        if "answer" not in result:
            raise ValidationError(f"missing 'answer' in {result!r}")
        return result

    def post(self, shared, prep_res, exec_res):
        shared["answer"] = exec_res["answer"]


def test_validators_clean_values_on_the_way_through():
    shared = {"question": "  why  "}
    Graph(start=Answer()).run(shared)
    assert shared["answer"] == "WHY"


@pytest.mark.parametrize(
    ("question", "stage", "fragment"),
    [("", "input", "non-empty string, got ''"), ("bad", "output", "missing 'answer'")],
)
def test_validation_errors_name_the_node_and_the_stage(question, stage, fragment):
    with pytest.raises(ValidationError) as info:
        Graph(start=Answer(node_id="answerer")).run({"question": question})
    error = info.value
    assert (error.node_id, error.stage) == ("answerer", stage)
    assert str(error).startswith(f"node 'answerer' rejected its {stage}: ")
    assert fragment in str(error)


class Timed(MetricsNode):
    def exec(self, item):
        if item == "fail":
            raise RuntimeError("bad item")
        if item == "flaky" and self.cur_retry == 0:
            raise RuntimeError("first try")
        return item

    def prep(self, shared):
        return shared["item"]


def test_metrics_node_counts_successes_failures_and_retries_across_runs_and_threads():
    node = Timed(max_retries=2, node_id="timed")
    graph = Graph(start=node)
    items = ["ok"] * 20 + ["flaky"] * 5

    def run(item):
        graph.run({"item": item})

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(run, items))
    with pytest.raises(RuntimeError):
        graph.run({"item": "fail"})
    stats = node.get_stats()
    assert stats["node_id"] == "timed"
    assert (stats["total_executions"], stats["successes"], stats["failures"]) == (26, 25, 1)
    assert stats["total_retries"] == 5 + 1
    assert stats["success_rate"] == pytest.approx(25 / 26)
    assert 0 <= stats["min_execution_time"] <= stats["p50_time"] <= stats["p95_time"]
    assert stats["p95_time"] <= stats["max_execution_time"]
    node.reset_stats()
    assert node.get_stats() == {"status": "no_executions"}
