"""A resume position that does not fit the graph is refused with the whole story: which run, which
graph, which path, what is wrong and what to do. A ResumePoint can serve several runs."""

from __future__ import annotations

from typing import Any

import pytest

from kaygraph import Graph, GraphExecutionError, Node, ResumePoint


class Step(Node):
    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared.setdefault("ran", []).append((self.node_id, dict(self.params)))


def two_steps() -> Graph:
    first, second = Step(node_id="a"), Step(node_id="b")
    first >> second
    return Graph(start=first, name="pair")


def test_a_resume_point_needs_a_path() -> None:
    for empty in ([], ()):
        with pytest.raises(ValueError) as caught:
            ResumePoint(empty)
        assert str(caught.value) == "a ResumePoint needs a non-empty path"


def test_an_unknown_node_is_named_with_the_nodes_there_are() -> None:
    with pytest.raises(GraphExecutionError) as caught:
        two_steps().run({}, resume=ResumePoint(["gone"]), run_id="r-1")
    assert str(caught.value) == (
        "cannot resume run 'r-1' at node 'gone': graph 'pair' has no such node (its nodes are "
        "['a', 'b']). The graph changed since the checkpoint was written; restore the node or start "
        "a new run."
    )
    assert (caught.value.graph, caught.value.node_id) == ("pair", "gone")


def test_an_index_where_a_node_id_belongs_is_an_unknown_node() -> None:
    with pytest.raises(GraphExecutionError, match=r"at node 0: graph 'pair' has no such node") as caught:
        two_steps().run({}, resume=ResumePoint([0]), run_id="r-2")
    assert caught.value.node_id == "0"


def test_the_end_marker_must_come_last() -> None:
    with pytest.raises(GraphExecutionError) as caught:
        two_steps().run({}, resume=ResumePoint([None, "a"]), run_id="r-3")
    assert str(caught.value) == (
        "cannot resume run 'r-3' in graph 'pair' at path [None, 'a']: None (end of a level) must be "
        "the last element. The checkpoint does not match this graph's structure."
    )
    assert caught.value.graph == "pair"


def test_a_path_cannot_continue_past_a_plain_node() -> None:
    with pytest.raises(GraphExecutionError) as caught:
        two_steps().run({}, resume=ResumePoint(["a", "b"]), run_id="r-4")
    assert str(caught.value) == (
        "cannot resume run 'r-4' in graph 'pair' at path ['a', 'b']: it continues past node 'a', "
        "which is not a graph. The checkpoint does not match this graph's structure."
    )
    assert caught.value.graph == "pair"


def test_nothing_ran_before_a_bad_position_was_refused() -> None:
    shared: dict[str, Any] = {}
    with pytest.raises(GraphExecutionError):
        two_steps().run(shared, resume=ResumePoint(["gone"]))
    assert shared == {}


def test_one_resume_point_serves_several_runs_with_its_params() -> None:
    point = ResumePoint(["b"], params={"lang": "fr"})
    graph = two_steps()
    for _ in range(2):
        shared: dict[str, Any] = {}
        graph.run(shared, resume=point)
        assert shared["ran"] == [("b", {"lang": "fr"})]
    restarted = point.restarted()
    assert (restarted.path, restarted.params, restarted.last_action) == (("b",), {"lang": "fr"}, None)
    finished = ResumePoint([None], last_action="done", completed_items={1: "x"}).restarted()
    assert (finished.last_action, finished.completed_items) == ("done", {1: "x"})
