"""Graph routing, params, nesting, step limits, ids and introspection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest

from kaygraph import (
    BaseNode,
    Graph,
    GraphDefinitionError,
    GraphExecutionError,
    KayGraphError,
    Node,
)
from kaygraph.core.exceptions import InvalidActionError


class Record(Node):
    """Appends its id to shared['trail'] and returns the action given at construction."""

    def __init__(self, action=None, **kwargs):
        super().__init__(**kwargs)
        self.action = action

    def post(self, shared, prep_res, exec_res):
        shared.setdefault("trail", []).append(self.node_id)
        return self.action


def test_edges_follow_the_action_post_returns():
    decide, approve, reject = Record("approve"), Record(node_id="approve"), Record(node_id="reject")
    decide - "approve" >> approve
    decide - "reject" >> reject
    shared = {}
    assert Graph(start=decide).run(shared) is None
    assert shared["trail"] == ["Record", "approve"]


def test_none_action_follows_the_default_edge_and_next_chains():
    first, second, third = Record(), Record(), Record("end")
    assert first.next(second) is second
    second >> third
    shared = {}
    assert Graph(start=first).run(shared) == "end"
    assert shared["trail"] == ["Record", "Record_2", "Record_3"]


def test_graph_start_method_returns_the_node_for_chaining():
    graph = Graph()
    first = Record()
    graph.start(first) >> Record("last")
    shared = {}
    assert graph.run(shared) == "last"
    assert len(shared["trail"]) == 2


def test_unknown_action_ends_the_run_with_one_warning_naming_the_options():
    node = Record("maybe")
    node - "yes" >> Record()
    node - "no" >> Record()
    with pytest.warns(UserWarning) as caught:
        assert Graph(start=node).run({}) == "maybe"
    assert [str(w.message) for w in caught] == ["Graph ends: 'maybe' not found in ['yes', 'no']"]


def test_a_node_without_successors_ends_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Graph(start=Record("anything")).run({}) == "anything"


def test_overwriting_an_edge_warns():
    node = Record()
    node >> Record()
    with pytest.warns(UserWarning, match="Overwriting successor for action 'default'"):
        node >> Record()


def test_action_labels_must_be_strings():
    with pytest.raises(InvalidActionError, match="action must be a string, got 5") as info:
        Record() - 5  # type: ignore[operator]
    assert isinstance(info.value, TypeError)
    with pytest.raises(InvalidActionError):
        Record().next(Record(), 5)  # type: ignore[arg-type]


def test_a_non_string_action_with_successors_is_an_engine_error_naming_the_node():
    node = Record(action=["not", "a", "string"], node_id="router")
    node >> Record()
    with pytest.raises(GraphExecutionError, match="node 'router' returned") as info:
        Graph(start=node).run({})
    assert info.value.node_id == "router"


def test_graph_without_start_node_says_how_to_fix_it():
    with pytest.raises(GraphExecutionError, match=r"has no start node: pass Graph\(start=node\)"):
        Graph(name="empty").run({})


def test_max_steps_stops_an_endless_loop_naming_graph_and_node():
    spin = Record("again", node_id="spin")
    spin - "again" >> spin
    with pytest.raises(GraphExecutionError, match="exceeded max_steps=5") as info:
        Graph(start=spin, name="looper", max_steps=5).run({})
    assert info.value.graph == "looper" and info.value.node_id == "spin"
    assert isinstance(info.value, KayGraphError)


def test_a_bounded_loop_within_max_steps_completes():
    class Countdown(Node):
        def post(self, shared, prep_res, exec_res):
            shared["n"] -= 1
            return "again" if shared["n"] else "done"

    node = Countdown()
    node - "again" >> node
    shared = {"n": 5}
    with pytest.warns(UserWarning, match="Graph ends: 'done' not found in \\['again'\\]"):
        assert Graph(start=node, max_steps=5).run(shared) == "done"


def test_params_flow_from_graph_to_nodes_and_nested_graphs():
    seen = []

    class Show(Node):
        def prep(self, shared):
            seen.append(dict(self.params))

    inner = Graph(start=Show())
    first = Show()
    first >> inner
    outer = Graph(start=first)
    outer.set_params({"tenant": "acme"})
    outer.run({})
    assert seen == [{"tenant": "acme"}, {"tenant": "acme"}]


def test_nested_graph_routes_on_its_last_action():
    inner_last = Record("inner_done")
    inner = Graph(start=inner_last)
    after = Record(node_id="after")
    inner - "inner_done" >> after
    shared = {}
    Graph(start=inner).run(shared)
    assert shared["trail"] == ["Record", "after"]


def test_graph_post_can_change_the_action():
    class Renaming(Graph):
        def post(self, shared, prep_res, exec_res):
            return f"{exec_res}!"

    assert Renaming(start=Record("x")).run({}) == "x!"


# -- ids and introspection -----------------------------------------------------------------


def build_pipeline():
    class Load(Node):
        pass

    class Summarize(Node):
        pass

    load, first, second = Load(), Summarize(), Summarize()
    review = Summarize(node_id="review")
    load >> first >> second
    second - "check" >> review
    review - "redo" >> first
    return Graph(start=load, name="pipeline"), (load, first, second, review)


def test_ids_are_class_names_deduplicated_in_graph_order_and_explicit_ids_win():
    graph, (load, first, second, review) = build_pipeline()
    assert list(graph.nodes()) == ["Load", "Summarize", "Summarize_2", "review"]
    assert (load.node_id, first.node_id, second.node_id, review.node_id) == (
        "Load",
        "Summarize",
        "Summarize_2",
        "review",
    )


def test_derived_ids_skip_names_taken_explicitly():
    taken = Record(node_id="Record")
    auto = Record()
    taken >> auto
    Graph(start=taken).run({})
    assert auto.node_id == "Record_2"


def test_duplicate_explicit_ids_are_rejected():
    first = Record(node_id="same")
    first >> Record(node_id="same")
    with pytest.raises(GraphDefinitionError, match="two nodes with node_id 'same'"):
        Graph(start=first).nodes()


def test_ids_are_stable_across_processes():
    script = textwrap.dedent(
        """
        from kaygraph import Graph, Node
        class Fetch(Node): pass
        class Parse(Node): pass
        fetch, parse, retry = Fetch(), Parse(), Fetch()
        fetch >> parse
        parse - "retry" >> retry
        retry >> fetch
        inner = Graph(start=Parse())
        retry - "deep" >> inner
        g = Graph(start=fetch)
        print([p for p, _ in g.walk()])
        """
    )
    outputs = {
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == (
        "[('Fetch',), ('Parse',), ('Fetch_2',), ('Graph',), ('Graph', 'Parse')]"
    )


def test_ids_are_recomputed_when_the_graph_changes():
    first = Record()
    graph = Graph(start=first)
    assert list(graph.nodes()) == ["Record"]
    first >> Record()
    assert list(graph.nodes()) == ["Record", "Record_2"]


def test_edges_and_walk_cover_nested_graphs():
    graph, _ = build_pipeline()
    assert graph.edges() == [
        ("Load", "default", "Summarize"),
        ("Summarize", "default", "Summarize_2"),
        ("Summarize_2", "check", "review"),
        ("review", "redo", "Summarize"),
    ]
    inner = Graph(start=Record(), node_id="inner")
    start = Record(node_id="start")
    start >> inner
    paths = [path for path, _ in Graph(start=start).walk()]
    assert paths == [("start",), ("inner",), ("inner", "Record")]


def test_mermaid_shows_nodes_labelled_edges_and_nested_subgraphs():
    inner = Graph(start=Record(node_id="embed"), node_id="index")
    load = Record(node_id="load")
    load - "fresh" >> inner
    load >> Record(node_id='say "hi"')
    assert Graph(start=load).to_mermaid().splitlines() == [
        "flowchart TD",
        '    n0["load (Record)"]',
        '    subgraph n1 ["index (Graph)"]',
        '        n2["embed (Record)"]',
        "    end",
        '    n3["say #quot;hi#quot; (Record)"]',
        "    n0 -->|fresh| n1",
        "    n0 --> n3",
    ]


def test_mermaid_ids_never_collide_whatever_the_node_ids():
    first, second = Record(node_id="a-b"), Record(node_id="a_b")
    first >> second
    lines = Graph(start=first).to_mermaid().splitlines()
    assert lines[1:] == ['    n0["a-b (Record)"]', '    n1["a_b (Record)"]', "    n0 --> n1"]


def test_graph_that_contains_itself_is_rejected():
    graph = Graph(node_id="loop")
    node = Record()
    graph.start(node)
    node >> graph
    with pytest.raises(GraphDefinitionError, match="contains itself"):
        graph.nodes()


def test_successors_must_be_nodes():
    with pytest.raises(GraphDefinitionError, match="successors must be nodes"):
        Record() >> "not a node"  # type: ignore[operator]


def test_node_id_must_be_a_non_empty_string():
    assert BaseNode(node_id="").node_id == "BaseNode"  # "" means no id, as in KayGraph 0.3
    with pytest.raises(GraphDefinitionError, match="node_id must be a non-empty string"):
        BaseNode(node_id=5)  # type: ignore[arg-type]
    with pytest.raises(GraphDefinitionError, match="node_id must be a non-empty string"):
        BaseNode().node_id = ""


def test_mermaid_names_a_node_once_when_its_id_is_its_class_and_escapes_bars_in_actions():
    first, second = Record(node_id="Record"), Record(node_id="next")
    first - "yes|no" >> second
    lines = Graph(start=first).to_mermaid().splitlines()
    assert lines[1:] == ['    n0["Record"]', '    n1["next (Record)"]', "    n0 -->|yes/no| n1"]
