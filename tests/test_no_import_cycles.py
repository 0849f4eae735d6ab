"""No import circles in kaygraph/: not at module level, not inside functions, not even for type
checking only. A circle hides an order dependency; the shared helper belongs in a lower module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kaygraph"

#: Circles tolerated for now, as module sets: none. Keep it that way; a new circle fails.
KNOWN_CYCLES: list[frozenset[str]] = []


def module_names() -> dict[str, tuple[Path, bool]]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        names[".".join(parts)] = (path, is_package)
    return names


def import_graph() -> dict[str, set[str]]:
    """Every module's imports of other kaygraph modules, wherever the import statement is."""
    names = module_names()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in names.items():
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                for alias in node.names:  # `from pkg import sub` imports the submodule
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in names else module)
        graph[name] = {target for target in targets if target in names and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_checker_sees_function_level_and_type_checking_imports(tmp_path):
    assert "kaygraph.core.executor" in import_graph()["kaygraph.core.node"]  # inside a method
    assert "kaygraph.core.events" in import_graph()["kaygraph.core.base_node"]  # TYPE_CHECKING only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_kaygraph_has_no_import_circles():
    found = cycles(import_graph())
    unexpected = [sorted(cycle) for cycle in found if not any(cycle <= known for known in KNOWN_CYCLES)]
    assert not unexpected, (
        f"import circles: {unexpected}. Move what both modules need down to a module they both "
        "import (see STYLE.md)."
    )


def test_the_core_imports_nothing_above_it():
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("kaygraph.core"):
            outside = {target for target in targets if not target.startswith("kaygraph.core")}
            assert not outside, f"{name} imports {sorted(outside)}"
