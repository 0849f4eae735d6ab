"""0.3's companion modules are exported from `kaygraph` but loaded only when touched."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import kaygraph

COMPANIONS = {
    "kaygraph.composition": [
        "SubGraphNode",
        "ConditionalSubGraphNode",
        "ParallelSubGraphNode",
        "compose_graphs",
    ],
    "kaygraph.interactive": ["InteractiveGraph", "AsyncInteractiveGraph", "InteractiveNode", "UserInputNode"],
    "kaygraph.persistence": ["PersistentGraph"],
    "kaygraph.workflow_loader": [
        "load_workflow",
        "export_workflow",
        "validate_workflow",
        "graph_to_yaml",
        "yaml_to_graph",
    ],
}


def loaded_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_import_kaygraph_loads_no_companion_module_nor_their_dependencies() -> None:
    loaded = loaded_after("import kaygraph")
    assert not set(loaded) & set(COMPANIONS)
    assert "yaml" not in loaded and "logging" not in loaded and "typing" not in loaded


@pytest.mark.parametrize("module", sorted(COMPANIONS))
def test_each_name_loads_its_own_module_only(module: str) -> None:
    name = COMPANIONS[module][0]
    loaded = set(loaded_after(f"import kaygraph; kaygraph.{name}"))
    assert module in loaded
    assert not (set(COMPANIONS) - {module}) & loaded
    assert "yaml" not in loaded  # PyYAML only when a YAML file is read


def test_names_are_exported_and_are_the_modules_objects() -> None:
    import importlib

    for module, names in COMPANIONS.items():
        for name in names:
            assert name in kaygraph.__all__ and name in dir(kaygraph)
            assert getattr(kaygraph, name) is getattr(importlib.import_module(module), name)


def test_the_0_3_import_paths_still_work() -> None:
    from kaygraph.composition import SubGraphNode
    from kaygraph.persistence import PersistentGraph
    from kaygraph.workflow_loader import load_workflow

    assert (SubGraphNode, PersistentGraph, load_workflow) == (
        kaygraph.SubGraphNode,
        kaygraph.PersistentGraph,
        kaygraph.load_workflow,
    )
