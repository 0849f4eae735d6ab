"""Declarative workflows: a graph described in a ``.kg.yaml`` (or JSON) file, KayGraph 0.3's format.

    workflows:
      main:                              # the workflow that runs (or domain.main_workflow)
        description: Greet someone
        concepts:                        # node name -> node class
          greeter: GreeterNode           # a class already imported, or "package.module:Class"
          formatter: FormatterNode
        graph: |                         # one chain per line; the first node is the start
          greeter >> formatter
          formatter - "again" >> greeter

``load_workflow(path)`` returns a :class:`~kaygraph.Graph` whose nodes are ``Class(node_id=name)``.
YAML needs PyYAML (``pip install 'kaygraph[yaml]'``); JSON files with the same structure need
nothing. :func:`validate_workflow` lists the problems of a file without building it;
:func:`export_workflow` / :func:`graph_to_yaml` write a graph back in this format.

    >>> from kaygraph import Node
    >>> class Hello(Node):
    ...     def post(self, shared, prep_res, exec_res):
    ...         shared["said"] = "hello"
    >>> graph = yaml_to_graph({"workflows": {"main": {"concepts": {"hi": "Hello"}, "graph": "hi"}}})
    >>> shared = {}
    >>> graph.run(shared)
    >>> shared, list(graph.nodes())
    ({'said': 'hello'}, ['hi'])
"""

from __future__ import annotations

import importlib
import itertools
import json
import re
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from kaygraph.core import BaseNode, Graph
from kaygraph.core.exceptions import GraphDefinitionError

#: Modules tried (after the ones already imported) when a concept's class is not found.
COMMON_MODULES = ("nodes", "app.nodes", "workflow.nodes")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# name, then optionally - "action" (quoted) or  - action  (unquoted, with spaces around the dash)
_SEGMENT = re.compile(
    r"""^(?P<name>[^\s"']+?)(?:\s*-\s*(?P<quoted>"[^"]*"|'[^']*')|\s+-\s+(?P<bare>[^\s"']+))?$"""
)

Connection = tuple[str, str, str | None]


# -- reading files ------------------------------------------------------------------------------


def load_yaml_file(file_path: str | Path) -> dict[str, Any]:
    """The content of a workflow file: JSON (``.json``, or text starting with ``{``) or YAML."""
    path = Path(file_path)
    if not path.is_file():
        raise FileNotFoundError(f"Workflow file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GraphDefinitionError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    else:
        content = _parse_yaml(text, path)
    if not isinstance(content, dict):
        raise GraphDefinitionError(
            f"{path}: a workflow file holds a mapping with a 'workflows' section, found "
            f"{type(content).__name__}"
        )
    return content


def _parse_yaml(text: str, path: Path) -> Any:
    from kaygraph.utils.imports import require_package

    yaml = require_package(
        "yaml", "yaml", f"Reading the YAML workflow file {path} (JSON files need no extra)", package="pyyaml"
    )
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise GraphDefinitionError(f"{where}: invalid YAML: {problem}") from None


# -- the graph syntax ---------------------------------------------------------------------------


def parse_graph_syntax(graph_str: str, concepts: Mapping[str, Any], where: str = "graph") -> list[Connection]:
    """The edges of a ``graph`` text as ``(source, target, action or None)``.

    Each line (or ``;``-separated part) is a chain: ``a >> b >> c`` or ``a - "action" >> b``;
    a line with one name just names a node. ``#`` starts a comment.
    """
    return _parse(graph_str, concepts, where)[1]


def _parse(graph_str: Any, concepts: Mapping[str, Any], where: str) -> tuple[list[str], list[Connection]]:
    """(node names in order of appearance, connections)."""
    if not isinstance(graph_str, str) or not graph_str.strip():
        raise GraphDefinitionError(f"{where}: 'graph' must be a non-empty string such as 'a >> b'")
    names: list[str] = []
    connections: list[Connection] = []
    lines = [part for line in graph_str.splitlines() for part in line.split("#", 1)[0].split(";")]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        chain = [_segment(part.strip(), line, number, where) for part in line.split(">>")]
        for name, _ in chain:
            if name not in concepts:
                raise GraphDefinitionError(
                    f"{where}, line {number} ({line.strip()!r}): node {name!r} is not defined in "
                    f"'concepts' (defined: {', '.join(map(str, concepts)) or 'none'})"
                )
            if name not in names:
                names.append(name)
        if chain[-1][1] is not None:
            raise GraphDefinitionError(
                f"{where}, line {number} ({line.strip()!r}): action {chain[-1][1]!r} leads nowhere; "
                'write source - "action" >> target'
            )
        for (source, action), (target, _) in itertools.pairwise(chain):
            connections.append((source, target, action))
    if not names:
        raise GraphDefinitionError(f"{where}: 'graph' names no node")
    return names, connections


def _segment(text: str, line: str, number: int, where: str) -> tuple[str, str | None]:
    match = _SEGMENT.match(text)
    if match is None:
        raise GraphDefinitionError(
            f"{where}, line {number} ({line.strip()!r}): cannot read {text!r}; write name, "
            'name >> other or name - "action" >> other'
        )
    quoted = match.group("quoted")
    return match.group("name"), quoted[1:-1] if quoted is not None else match.group("bare")


# -- finding node classes ------------------------------------------------------------------------


def discover_node_class(node_type: str, search_modules: Iterable[str | ModuleType] | None = None) -> type:
    """The node class named ``node_type``.

    ``"package.module:Class"`` (or ``"package.module.Class"`` when that module imports) names it
    exactly. A bare name is looked up in ``search_modules``, then ``__main__``, then every
    imported module, then :data:`COMMON_MODULES`. Raises :class:`GraphDefinitionError` (a
    ``ValueError``) naming what was searched.
    """
    if not isinstance(node_type, str) or not node_type:
        raise GraphDefinitionError(f"a node type must be a class name, got {node_type!r}")
    if ":" in node_type:
        module_name, _, attribute = node_type.partition(":")
        return _node_class(_import(module_name, node_type), attribute, node_type)
    if "." in node_type:
        module_name, _, attribute = node_type.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            pass
        else:
            return _node_class(module, attribute, node_type)
    for module in _candidate_modules(search_modules):
        found = getattr(module, node_type, None)
        if isinstance(found, type) and issubclass(found, BaseNode):
            return found
    subclasses = _node_subclasses()
    same_name = [cls for cls in subclasses if cls.__name__ == node_type]
    if len(same_name) == 1:  # defined where no module attribute reaches it (a function, a doctest)
        return same_name[0]
    if same_name:
        raise GraphDefinitionError(
            f"Node class {node_type!r} is ambiguous: "
            f"{', '.join(sorted(f'{cls.__module__}:{cls.__qualname__}' for cls in same_name))}; "
            "write 'module:Class' in the workflow or pass search_modules=[...]"
        )
    known = sorted({cls.__name__ for cls in subclasses})
    import difflib

    close = difflib.get_close_matches(node_type, known, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise GraphDefinitionError(
        f"Node class {node_type!r} not found.{hint} Import the module that defines it before loading "
        f"the workflow, pass search_modules=['your.module'], or write 'your.module:{node_type}'."
    )


def _import(module_name: str, node_type: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise GraphDefinitionError(
            f"node type {node_type!r}: cannot import module {module_name!r}: {exc}"
        ) from exc


def _node_class(module: ModuleType, attribute: str, node_type: str) -> type:
    found = getattr(module, attribute, None)
    if isinstance(found, type) and issubclass(found, BaseNode):
        return found
    raise GraphDefinitionError(
        f"node type {node_type!r}: module {module.__name__!r} has "
        f"{'no attribute ' + repr(attribute) if found is None else repr(found) + ', not a node class'}"
    )


def _candidate_modules(search_modules: Iterable[str | ModuleType] | None) -> Iterable[ModuleType]:
    for entry in search_modules or ():
        yield entry if isinstance(entry, ModuleType) else _import(entry, str(entry))
    main = sys.modules.get("__main__")
    if main is not None:
        yield main
    yield from [module for module in list(sys.modules.values()) if isinstance(module, ModuleType)]
    for name in COMMON_MODULES:
        try:
            yield importlib.import_module(name)
        except ImportError:
            continue


def _node_subclasses() -> list[type]:
    found: list[type] = []
    pending = list(BaseNode.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


# -- building graphs -----------------------------------------------------------------------------


def yaml_to_graph(
    yaml_content: Mapping[str, Any],
    search_modules: Iterable[str | ModuleType] | None = None,
    *,
    source: str = "workflow",
) -> Graph:
    """The :class:`~kaygraph.Graph` of the main workflow of parsed workflow-file content."""
    name, workflow = _main_workflow(yaml_content, source)
    where = f"{source}: workflow {name!r}"
    concepts = _concepts(workflow, where)
    names, connections = _parse(workflow.get("graph"), concepts, where)
    nodes = {
        concept: _instantiate(discover_node_class(concepts[concept], search_modules), concept, where)
        for concept in names
    }
    for source_name, target_name, action in connections:
        nodes[source_name].next(nodes[target_name], action or "default")
    start = workflow.get("start", names[0])
    if start not in nodes:
        raise GraphDefinitionError(f"{where}: start node {start!r} is not in the graph ({', '.join(nodes)})")
    return Graph(start=nodes[start], name=str(name))


def load_workflow(file_path: str | Path, search_modules: Iterable[str | ModuleType] | None = None) -> Graph:
    """Build the graph described by a ``.kg.yaml`` / ``.json`` workflow file."""
    return yaml_to_graph(load_yaml_file(file_path), search_modules, source=str(file_path))


def _main_workflow(content: Mapping[str, Any], source: str) -> tuple[str, Mapping[str, Any]]:
    workflows = content.get("workflows") if isinstance(content, Mapping) else None
    if not isinstance(workflows, Mapping) or not workflows:
        raise GraphDefinitionError(f"{source}: needs a 'workflows' section mapping names to workflows")
    domain = content.get("domain") or {}
    name = domain.get("main_workflow", next(iter(workflows))) if isinstance(domain, Mapping) else None
    if name not in workflows:
        raise GraphDefinitionError(
            f"{source}: main workflow {name!r} (domain.main_workflow) not found; workflows: "
            f"{', '.join(map(str, workflows))}"
        )
    workflow = workflows[name]
    if not isinstance(workflow, Mapping):
        raise GraphDefinitionError(
            f"{source}: workflow {name!r} must be a mapping with 'concepts' and 'graph'"
        )
    return str(name), workflow


def _concepts(workflow: Mapping[str, Any], where: str) -> dict[str, str]:
    concepts = workflow.get("concepts")
    if not isinstance(concepts, Mapping) or not concepts:
        raise GraphDefinitionError(f"{where}: must define 'concepts' (node name -> node class)")
    for concept, node_type in concepts.items():
        if not isinstance(node_type, str) or not node_type:
            raise GraphDefinitionError(
                f"{where}: concept {concept!r} must name a node class, got {node_type!r}"
            )
    return {str(concept): node_type for concept, node_type in concepts.items()}


def _instantiate(cls: type, concept: str, where: str) -> BaseNode:
    try:
        node = cls(node_id=concept)
    except TypeError:  # a constructor without node_id=: build it bare and name it
        try:
            node = cls()
        except TypeError as exc:
            raise GraphDefinitionError(
                f"{where}: cannot create concept {concept!r} as {cls.__name__}(): {exc}"
            ) from exc
        node.node_id = concept
    return node  # type: ignore[no-any-return]


# -- validating ----------------------------------------------------------------------------------


def validate_workflow(file_path: str | Path, *, check_classes: bool = False) -> list[str]:
    """Every problem of a workflow file, as messages (an empty list: valid).

    Checks the file, the sections, the concepts and the graph syntax of each workflow; with
    ``check_classes=True`` also that each node class can be found (0.3 did not check classes).
    """
    path = Path(file_path)
    if not path.is_file():
        return [f"File not found: {path}"]
    try:
        content = load_yaml_file(path)
    except (GraphDefinitionError, ImportError, OSError) as exc:
        return [f"Failed to load {path}: {exc}"]
    workflows = content.get("workflows")
    if not isinstance(workflows, Mapping):
        return [f"{path}: missing 'workflows' section"]
    if not workflows:
        return [f"{path}: no workflows defined"]
    problems = []
    for name, workflow in workflows.items():
        where = f"{path}: workflow {name!r}"
        if not isinstance(workflow, Mapping):
            problems.append(f"{where}: must be a mapping with 'concepts' and 'graph'")
            continue
        try:
            concepts = _concepts(workflow, where)
            _parse(workflow.get("graph"), concepts, where)
            if check_classes:
                for concept_type in concepts.values():
                    discover_node_class(concept_type)
        except GraphDefinitionError as exc:
            problems.append(str(exc))
    try:
        _main_workflow(content, str(path))
    except GraphDefinitionError as exc:
        problems.append(str(exc))
    return problems


# -- exporting -----------------------------------------------------------------------------------


def _workflow_of(graph: Graph, workflow_name: str) -> dict[str, Any]:
    if not isinstance(graph, Graph):
        raise GraphDefinitionError(f"cannot export {graph!r}: export_workflow() takes a kaygraph.Graph")
    nodes = graph.nodes()
    if not nodes:
        raise GraphDefinitionError(f"cannot export graph {graph.name!r}: it has no start node")
    for node_id, node in nodes.items():
        if not _NAME.match(node_id) or ">>" in node_id:
            raise GraphDefinitionError(
                f"cannot export node {node_id!r}: the graph syntax needs ids of letters, digits, '_', "
                "'.' and '-'; give it such a node_id"
            )
        if isinstance(node, Graph):
            warnings.warn(
                f"exporting nested graph {node_id!r} as its class name only: its own nodes are not "
                "written (export it as a workflow of its own)",
                stacklevel=3,
            )
    lines = []
    for source, action, target in graph.edges():
        lines.append(
            f"{source} >> {target}" if action == "default" else f"{source} - {json.dumps(action)} >> {target}"
        )
    start = next(iter(nodes))
    linked = {name for source, _, target in graph.edges() for name in (source, target)}
    lines += [node_id for node_id in nodes if node_id not in linked]  # lone nodes, start first
    if lines and not lines[0].startswith(start + " ") and lines[0] != start:
        lines.insert(0, start)  # the first name of the graph text is the start node
    return {
        "workflows": {
            workflow_name: {
                "description": f"Exported workflow: {workflow_name}",
                "concepts": {node_id: type(node).__name__ for node_id, node in nodes.items()},
                "graph": "\n".join(lines),
            }
        }
    }


def graph_to_yaml(graph: Graph, workflow_name: str = "main") -> str:
    """The graph as ``.kg.yaml`` text (needs no PyYAML: the format is small and fixed)."""
    return _to_yaml(_workflow_of(graph, workflow_name))


def export_workflow(graph: Graph, output_path: str | Path, workflow_name: str = "main") -> Path:
    """Write the graph to ``output_path``: YAML, or JSON when the name ends in ``.json``."""
    path = Path(output_path)
    workflow = _workflow_of(graph, workflow_name)
    text = json.dumps(workflow, indent=2) + "\n" if path.suffix == ".json" else _to_yaml(workflow)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _to_yaml(value: Mapping[str, Any], indent: str = "") -> str:
    """Block-style YAML for nested mappings of strings; multi-line strings become ``|`` blocks."""
    lines = []
    for key, item in value.items():
        label = key if _NAME.match(str(key)) else json.dumps(str(key))
        if isinstance(item, Mapping):
            lines.append(f"{indent}{label}:")
            lines.append(_to_yaml(item, indent + "  ").rstrip("\n"))
        elif isinstance(item, str) and "\n" in item:
            block = "\n".join(f"{indent}  {line}" for line in item.splitlines())
            lines.append(f"{indent}{label}: |-\n{block}")
        else:
            lines.append(f"{indent}{label}: {json.dumps(item)}")
    return "\n".join(lines) + "\n"


__all__ = [
    "discover_node_class",
    "export_workflow",
    "graph_to_yaml",
    "load_workflow",
    "load_yaml_file",
    "parse_graph_syntax",
    "validate_workflow",
    "yaml_to_graph",
]
