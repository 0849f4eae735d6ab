"""What the core says when a graph is built wrongly: the whole message, and warnings that point at
the user's own line (not at KayGraph's internals)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from kaygraph import BatchNode, Graph, Node
from kaygraph.core.exceptions import GraphDefinitionError, InvalidActionError


def test_a_non_string_edge_label_is_refused_with_the_way_to_write_it() -> None:
    with pytest.raises(InvalidActionError) as caught:
        Node(node_id="a") - 5  # type: ignore[operator]
    assert str(caught.value) == 'action must be a string, got 5 (int); write node - "action" >> other'


def test_an_empty_node_id_means_no_id_as_in_0_3() -> None:
    class Named(Node):
        pass

    assert Named(node_id="").node_id == "Named"


@pytest.mark.parametrize("bad", [7, None])
def test_a_node_id_must_be_a_non_empty_string(bad: Any) -> None:
    if bad is None:
        node = Node()
        with pytest.raises(GraphDefinitionError) as caught:
            node.node_id = bad
        assert str(caught.value) == "node_id must be a non-empty string, got None for Node"
        return

    class Named(Node):
        pass

    with pytest.raises(GraphDefinitionError) as caught:
        Named(node_id=bad)
    assert str(caught.value) == f"node_id must be a non-empty string, got {bad!r} for Named"


def test_repr_names_class_and_id() -> None:
    class Fetch(Node):
        pass

    assert repr(Fetch(node_id="fetch")) == "<Fetch 'fetch'>"
    assert repr(BatchNode()) == "<BatchNode 'BatchNode'>"


def test_a_coroutine_hook_on_a_sync_node_warns_at_the_class_and_is_not_called() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Sync(Node):
            async def before_prep(self, shared: Any) -> None:
                raise AssertionError("never awaited as a hook")

    (warning,) = caught
    assert str(warning.message) == (
        f"{Sync.__qualname__}.before_prep is a coroutine function (only AsyncNode awaits hooks), "
        "but KayGraph calls before_prep(self, shared) as a lifecycle hook; it will not be called as "
        "one. Rename it if it is not meant as a hook."
    )
    assert warning.filename == __file__  # points at the class statement above
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the never-awaited coroutine, if created
        assert Graph(start=Sync()).run({}) is None


def test_a_hook_with_the_wrong_arity_names_the_signature() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Odd(Node):
            def on_error(self, shared: Any) -> None:  # type: ignore[override]
                raise AssertionError("not a hook")

    (warning,) = caught
    assert str(warning.message) == (
        f"{Odd.__qualname__}.on_error takes 1 argument(s), but KayGraph calls "
        "on_error(self, shared, error) as a lifecycle hook; it will not be called as one. Rename it "
        "if it is not meant as a hook."
    )
    assert warning.filename == __file__


def test_running_a_node_with_successors_warns_at_the_caller() -> None:
    first = Node(node_id="first")
    first >> Node(node_id="second")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first.run({})
    (warning,) = caught
    assert str(warning.message) == "Node won't run successors. Use Graph."


def test_a_graph_with_successors_run_directly_warns_too() -> None:
    graph = Graph(start=Node(node_id="only"))
    graph >> Node(node_id="after")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graph.run({})
    assert [str(warning.message) for warning in caught] == ["Node won't run successors. Use Graph."]


def test_run_time_warnings_point_at_the_callers_line() -> None:
    """(Not run under mutation testing: mutmut's wrappers add stack frames.)"""
    node = Node(node_id="first")
    node >> Node(node_id="second")
    graph = Graph(start=Node(node_id="only"))
    graph >> Node(node_id="after")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        node.run({})
        graph.run({})
    assert [warning.filename for warning in caught] == [__file__, __file__]


def test_a_missing_edge_warning_names_the_action_and_the_edges() -> None:
    class Decide(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return "maybe"

    decide = Decide()
    decide - "yes" >> Node(node_id="yes")
    decide - "no" >> Node(node_id="no")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Graph(start=decide).run({})
    assert [str(warning.message) for warning in caught] == ["Graph ends: 'maybe' not found in ['yes', 'no']"]


def test_a_non_string_action_error_names_node_type_and_edges() -> None:
    from kaygraph import GraphExecutionError

    class Returns(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return ["a", "list"]

    node = Returns(node_id="returns")
    node - "a" >> Node(node_id="next")
    with pytest.raises(GraphExecutionError) as caught:
        Graph(start=node, name="g").run({})
    assert str(caught.value) == (
        "node 'returns' returned ['a', 'list'] (list) from post(); actions must be strings or None. "
        "Its edges are ['a']"
    )
    assert (caught.value.graph, caught.value.node_id) == ("g", "returns")
