"""kaygraph.load_graph: graphs and factories named by "package.module:attr", and bad references."""

from __future__ import annotations

import textwrap

import pytest

import kaygraph
from kaygraph import Graph, GraphReferenceError, KayGraphError, load_graph

MODULE = textwrap.dedent(
    """
    from kaygraph import Graph, Node

    class Hello(Node):
        def post(self, shared, prep_res, exec_res):
            shared["hello"] = shared.get("hello", 0) + 1

    graph = Graph(start=Hello())
    calls = []

    def build():
        calls.append(1)
        return Graph(start=Hello(), name="built")

    class Namespace:
        graph = graph

    not_a_graph = 42
    sixty = "x" * 58  # its repr is exactly 60 characters
    sixty_one = "z" * 59
    longer = "y" * 100

    def needs_args(x):
        return Graph(start=Hello())

    def returns_wrong():
        return "nope"
    """
)


@pytest.fixture
def flows(tmp_path, monkeypatch):
    package = tmp_path / "kg_ref_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(MODULE)
    (package / "broken.py").write_text("import kg_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "kg_ref_pkg.flows"
    import sys

    for name in [name for name in sys.modules if name.startswith("kg_ref_pkg")]:
        del sys.modules[name]


def test_a_graph_attribute_is_returned_and_remembers_its_reference(flows):
    graph = load_graph(f"{flows}:graph")
    import kg_ref_pkg.flows as module

    assert graph is module.graph
    assert graph.graph_ref == f"{flows}:graph"
    shared: dict = {}
    graph.run(shared)
    assert shared == {"hello": 1}


def test_a_factory_is_called_on_every_load(flows):
    first = load_graph(f"{flows}:build")
    second = load_graph(f"{flows}:build")
    import kg_ref_pkg.flows as module

    assert isinstance(first, Graph) and first is not second
    assert module.calls == [1, 1]
    assert first.name == "built" and first.graph_ref == f"{flows}:build"


def test_dotted_attribute_path(flows):
    assert load_graph(f"{flows}:Namespace.graph").graph_ref == f"{flows}:Namespace.graph"


def test_graphs_built_directly_have_no_reference():
    assert Graph().graph_ref is None
    assert kaygraph.load_graph is load_graph


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_colon_here", "is not of the form 'package.module:attr'"),
        ("a:b:c", "is not of the form"),
        (":graph", "is not of the form"),
        ("kg_ref_pkg.flows:", "is not of the form"),
        ("kg_ref_pkg.flows:not-ident", "is not of the form"),
        ("kg_ref_pkg.nowhere:graph", "no module named 'kg_ref_pkg.nowhere'"),
        ("kg_ref_pkg.flows:missing", "'kg_ref_pkg.flows' has no attribute 'missing'"),
        ("kg_ref_pkg.flows:Namespace.nope", "'kg_ref_pkg.flows:Namespace' has no attribute 'nope'"),
        ("kg_ref_pkg.flows:not_a_graph", "names int 42, not a Graph"),
        ("kg_ref_pkg.flows:needs_args", "cannot be called without arguments"),
        ("kg_ref_pkg.flows:returns_wrong", "factory function returns_wrong returned str 'nope', not a Graph"),
    ],
)
def test_bad_references_name_the_culprit(flows, ref, message):
    with pytest.raises(GraphReferenceError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_graph(ref)
    assert isinstance(info.value, KayGraphError) and isinstance(info.value, ImportError)
    assert info.value.ref == ref
    assert ref in str(info.value)


def test_a_non_string_reference():
    with pytest.raises(GraphReferenceError, match="is not of the form"):
        load_graph(42)  # type: ignore[arg-type]


def test_a_module_failing_its_own_import_shows_that_error(flows):
    with pytest.raises(ModuleNotFoundError, match="kg_no_such_dependency") as info:
        load_graph("kg_ref_pkg.broken:graph")
    assert not isinstance(info.value, GraphReferenceError)


def test_a_value_named_instead_of_a_graph_is_shown_whole_up_to_60_characters(flows):
    with pytest.raises(GraphReferenceError) as sixty:
        load_graph("kg_ref_pkg.flows:sixty")
    assert f"names str {'x' * 58!r}, not a Graph" in str(sixty.value)
    with pytest.raises(GraphReferenceError) as sixty_one:
        load_graph("kg_ref_pkg.flows:sixty_one")
    assert f"names str {repr('z' * 59)[:57]}..., not a Graph" in str(sixty_one.value)
    with pytest.raises(GraphReferenceError) as longer:
        load_graph("kg_ref_pkg.flows:longer")
    assert f"names str {repr('y' * 100)[:57]}..., not a Graph" in str(longer.value)


def test_the_reference_errors_say_what_a_reference_looks_like(flows):
    with pytest.raises(GraphReferenceError) as shape:
        load_graph("no_colon_here")
    with pytest.raises(GraphReferenceError) as value:
        load_graph("kg_ref_pkg.flows:not_a_graph")
    assert str(shape.value) == (
        "graph reference 'no_colon_here' is not of the form 'package.module:attr' "
        "(e.g. 'myapp.flows:build_graph')"
    )
    assert str(value.value) == (
        "graph reference 'kg_ref_pkg.flows:not_a_graph' names int 42, "
        "not a Graph or a zero-argument function "
        "returning one"
    )


def test_a_missing_package_is_named_with_where_python_looks():
    with pytest.raises(GraphReferenceError) as caught:
        load_graph("kg_absent_pkg.flows:graph")
    assert str(caught.value) == (
        "graph reference 'kg_absent_pkg.flows:graph': no module named 'kg_absent_pkg.flows' (is its package "
        "installed, or its directory on sys.path / PYTHONPATH?)"
    )
