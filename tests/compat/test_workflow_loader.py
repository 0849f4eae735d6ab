"""Declarative workflows: .kg.yaml / JSON files to graphs and back (0.3's format)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kaygraph import (
    Graph,
    Node,
    export_workflow,
    graph_to_yaml,
    load_workflow,
    validate_workflow,
    yaml_to_graph,
)
from kaygraph.core.exceptions import GraphDefinitionError, MissingExtraError
from kaygraph.workflow_loader import discover_node_class, parse_graph_syntax


class GreeterNode(Node):
    def prep(self, shared):
        return shared.get("name", "World")

    def exec(self, name):
        return f"Hello, {name}!"

    def post(self, shared, prep_res, exec_res):
        shared["greeting"] = exec_res
        shared.setdefault("visits", 0)
        shared["visits"] += 1
        return "again" if shared["visits"] < 2 else None


class FormatterNode(Node):
    def prep(self, shared):
        return shared["greeting"]

    def exec(self, text):
        return text.upper()

    def post(self, shared, prep_res, exec_res):
        shared["formatted"] = exec_res


class NoIdNode(Node):
    def __init__(self):  # takes no node_id=: the loader names it afterwards
        super().__init__()


YAML = """\
workflows:
  main:
    description: Greet and shout
    concepts:
      greeter: GreeterNode
      formatter: FormatterNode
    graph: |
      greeter >> formatter   # the first name is the start node
      formatter - "again" >> greeter
      greeter - again >> greeter
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_workflow_loads_runs_and_routes_on_actions(tmp_path: Path) -> None:
    path = write(tmp_path, "greet.kg.yaml", YAML)
    assert validate_workflow(path) == []
    graph = load_workflow(path)

    shared = {"name": "Alice"}
    with pytest.warns(UserWarning, match="Graph ends"):  # formatter only has an "again" edge
        graph.run(shared)
    assert shared == {"name": "Alice", "greeting": "Hello, Alice!", "visits": 2, "formatted": "HELLO, ALICE!"}
    assert list(graph.nodes()) == ["greeter", "formatter"]
    assert sorted(graph.edges()) == [
        ("formatter", "again", "greeter"),
        ("greeter", "again", "greeter"),
        ("greeter", "default", "formatter"),
    ]


def test_json_workflow_needs_no_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed
    content = {"workflows": {"main": {"concepts": {"fmt": "FormatterNode"}, "graph": "fmt"}}}
    path = write(tmp_path, "flow.json", json.dumps(content))

    shared = {"greeting": "hi"}
    load_workflow(path).run(shared)
    assert shared["formatted"] == "HI"

    with pytest.raises(
        MissingExtraError, match=r"needs the 'pyyaml' package.*pip install 'kaygraph\[yaml\]'"
    ):
        load_workflow(write(tmp_path, "flow.kg.yaml", YAML))
    with pytest.raises(ImportError):  # MissingExtraError is an ImportError, as 0.3 raised
        load_workflow(tmp_path / "flow.kg.yaml")


def test_main_workflow_start_and_explicit_module_paths() -> None:
    content = {
        "domain": {"main_workflow": "second"},
        "workflows": {
            "first": {"concepts": {"x": "Nope"}, "graph": "x"},
            "second": {
                "concepts": {
                    "g": f"{__name__}:GreeterNode",
                    "f": f"{__name__}.FormatterNode",
                    "n": "NoIdNode",
                },
                "graph": "g >> f\nn",
                "start": "n",
            },
        },
    }
    graph = yaml_to_graph(content)
    assert graph.name == "second" and graph.start_node.node_id == "n"
    assert isinstance(graph.start_node, NoIdNode)


def test_errors_name_the_file_the_workflow_and_the_line(tmp_path: Path) -> None:
    bad_yaml = write(tmp_path, "bad.kg.yaml", "workflows:\n  main: [unclosed\n")
    with pytest.raises(GraphDefinitionError, match=r"bad.kg.yaml:\d+:\d+: invalid YAML"):
        load_workflow(bad_yaml)

    unknown = write(
        tmp_path, "unknown.kg.yaml", YAML.replace("formatter: FormatterNode", "formatter: FormaterNode")
    )
    with pytest.raises(
        GraphDefinitionError, match=r"'FormaterNode' not found\. Did you mean 'FormatterNode'"
    ):
        load_workflow(unknown)

    typo = YAML.replace("formatter - ", "formater - ")
    problems = validate_workflow(write(tmp_path, "typo.kg.yaml", typo))
    assert len(problems) == 1
    assert (
        "typo.kg.yaml: workflow 'main', line 2" in problems[0]
        and "node 'formater' is not defined" in problems[0]
    )

    with pytest.raises(GraphDefinitionError, match="leads nowhere"):
        parse_graph_syntax('a - "x"', {"a": "A"})
    with pytest.raises(FileNotFoundError, match="Workflow file not found"):
        load_workflow(tmp_path / "missing.kg.yaml")
    assert validate_workflow(tmp_path / "missing.kg.yaml") == [
        f"File not found: {tmp_path / 'missing.kg.yaml'}"
    ]
    with pytest.raises(GraphDefinitionError, match="needs a 'workflows' section"):
        yaml_to_graph({"nodes": []})


def test_validate_reports_every_workflow_and_optionally_classes(tmp_path: Path) -> None:
    content = {
        "workflows": {
            "ok": {"concepts": {"a": "GreeterNode"}, "graph": "a"},
            "no_graph": {"concepts": {"a": "GreeterNode"}},
            "no_concepts": {"graph": "a"},
            "ghost": {"concepts": {"a": "GhostNode"}, "graph": "a"},
        }
    }
    path = write(tmp_path, "many.json", json.dumps(content))
    problems = validate_workflow(path)
    assert len(problems) == 2
    assert any("'no_graph'" in p and "'graph' must be" in p for p in problems)
    assert any("'no_concepts'" in p and "must define 'concepts'" in p for p in problems)
    assert len(validate_workflow(path, check_classes=True)) == 3


def test_graphs_export_to_yaml_and_json_and_load_back(tmp_path: Path) -> None:
    greeter, formatter = GreeterNode(node_id="greeter"), FormatterNode(node_id="formatter")
    greeter >> formatter
    greeter - "again" >> greeter
    graph = Graph(start=greeter)

    text = graph_to_yaml(graph, "roundtrip")
    assert text.startswith("workflows:\n  roundtrip:\n")
    assert 'greeter: "GreeterNode"' in text and 'greeter - "again" >> greeter' in text

    for name in ("out/flow.kg.yaml", "out/flow.json"):
        path = export_workflow(graph, tmp_path / name, "roundtrip")
        reloaded = load_workflow(path)
        assert sorted(reloaded.edges()) == sorted(graph.edges())
        shared = {"name": "Bo"}
        reloaded.run(shared)
        assert shared["formatted"] == "HELLO, BO!"
    assert json.loads((tmp_path / "out/flow.json").read_text())["workflows"]["roundtrip"]["concepts"] == {
        "greeter": "GreeterNode",
        "formatter": "FormatterNode",
    }


def test_single_node_graphs_export_and_odd_ids_are_refused() -> None:
    assert 'graph: "solo"' in graph_to_yaml(Graph(start=FormatterNode(node_id="solo")))
    with pytest.raises(GraphDefinitionError, match="cannot export node 'has space'"):
        graph_to_yaml(Graph(start=FormatterNode(node_id="has space")))


def test_discovery_prefers_search_modules_and_explains_failures() -> None:
    import types

    module = types.ModuleType("custom_nodes")

    class GreeterNode(Node):  # same name as this module's class
        pass

    module.GreeterNode = GreeterNode
    assert discover_node_class("GreeterNode", [module]) is GreeterNode
    with pytest.raises(GraphDefinitionError, match="cannot import module 'no_such_module'"):
        discover_node_class("no_such_module:Thing")
    with pytest.raises(GraphDefinitionError, match="has no attribute 'Missing'"):
        discover_node_class(f"{__name__}:Missing")


def test_classes_defined_inside_functions_are_found_unless_ambiguous() -> None:
    def make():
        class LocalOnlyNode(Node):
            pass

        return LocalOnlyNode

    first = make()
    assert discover_node_class("LocalOnlyNode") is first
    second = make()  # a second class with the same name (kept alive: subclasses are weak references)
    with pytest.raises(GraphDefinitionError, match=r"'LocalOnlyNode' is ambiguous: .*write 'module:Class'"):
        discover_node_class("LocalOnlyNode")
    assert second is not first
