"""KayGraph: build AI applications (agents, RAG, multi-step LLM pipelines) as graphs of nodes.

Each node runs ``prep`` (read the shared store), ``exec`` (compute, with retries) and ``post``
(write back and return an action); the action picks the edge to the next node. The core has zero
dependencies; production features are extras (``pip install 'kaygraph[persistence]'``, ...).

Basic usage:

    >>> from kaygraph import Graph, Node
    >>> class Double(Node):
    ...     def prep(self, shared):
    ...         return shared["input"]
    ...     def exec(self, value):
    ...         return value * 2
    ...     def post(self, shared, prep_res, exec_res):
    ...         shared["result"] = exec_res
    >>> shared = {"input": 21}
    >>> Graph(start=Double()).run(shared)
    >>> shared
    {'input': 21, 'result': 42}

Extensions load on first touch (``kaygraph.ext.persistence``) and fail with an install hint
when their extra is missing:

    pip install 'kaygraph[persistence]'    # durable, resumable runs (SQLite, Redis, PostgreSQL)
    pip install 'kaygraph[observability]'  # OpenTelemetry traces, Prometheus metrics
    pip install 'kaygraph[all]'            # every extension
"""

from __future__ import annotations

from kaygraph.core import (
    AsyncBatchGraph,
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    BaseNode,
    BatchGraph,
    BatchNode,
    CancelToken,
    Config,
    Graph,
    GraphDefinitionError,
    GraphExecutionError,
    GraphReferenceError,
    KayGraphError,
    MetricsNode,
    Node,
    NodeExecutionError,
    ParallelBatchNode,
    ResumePoint,
    RunCancelled,
    RunContext,
    RunListener,
    ValidatedNode,
    ValidationError,
    __version__,
    add_listener,
    get_listeners,
    load_graph,
    remove_listener,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any

    from kaygraph import config as config
    from kaygraph import ext, plugins
    from kaygraph.composition import (
        ConditionalSubGraphNode,
        ParallelSubGraphNode,
        SubGraphNode,
        compose_graphs,
    )
    from kaygraph.config import configure, get_config
    from kaygraph.core.generics import T_Action, T_ExecRes, T_Params, T_PrepRes, T_Shared
    from kaygraph.info import list_extensions, show_info
    from kaygraph.interactive import AsyncInteractiveGraph, InteractiveGraph, InteractiveNode, UserInputNode
    from kaygraph.persistence import PersistentGraph
    from kaygraph.workflow_loader import (
        export_workflow,
        graph_to_yaml,
        load_workflow,
        validate_workflow,
        yaml_to_graph,
    )

# Names served lazily, so `import kaygraph` loads no extension, plugin or config file. An
# attribute of None means the module itself (its own __init__ is lazy in turn). Note the two
# configs: `kaygraph.Config` (above, eager) configures nodes; the module `kaygraph.config` holds
# the framework's settings (`kaygraph.config.Config(config_file=...)`, `get_config()`).
_LAZY: dict[str, tuple[str, str | None]] = {
    "config": ("kaygraph.config", None),
    "ext": ("kaygraph.ext", None),
    "plugins": ("kaygraph.plugins", None),
    "list_extensions": ("kaygraph.info", "list_extensions"),
    "show_info": ("kaygraph.info", "show_info"),
    "configure": ("kaygraph.config", "configure"),
    "get_config": ("kaygraph.config", "get_config"),
    # 0.3's companion modules, each loaded on first use
    "SubGraphNode": ("kaygraph.composition", "SubGraphNode"),
    "ConditionalSubGraphNode": ("kaygraph.composition", "ConditionalSubGraphNode"),
    "ParallelSubGraphNode": ("kaygraph.composition", "ParallelSubGraphNode"),
    "compose_graphs": ("kaygraph.composition", "compose_graphs"),
    "InteractiveGraph": ("kaygraph.interactive", "InteractiveGraph"),
    "AsyncInteractiveGraph": ("kaygraph.interactive", "AsyncInteractiveGraph"),
    "InteractiveNode": ("kaygraph.interactive", "InteractiveNode"),
    "UserInputNode": ("kaygraph.interactive", "UserInputNode"),
    "PersistentGraph": ("kaygraph.persistence", "PersistentGraph"),
    "load_workflow": ("kaygraph.workflow_loader", "load_workflow"),
    "export_workflow": ("kaygraph.workflow_loader", "export_workflow"),
    "validate_workflow": ("kaygraph.workflow_loader", "validate_workflow"),
    "graph_to_yaml": ("kaygraph.workflow_loader", "graph_to_yaml"),
    "yaml_to_graph": ("kaygraph.workflow_loader", "yaml_to_graph"),
    # 0.3's type aliases: built on first use, so `typing` is not imported by `import kaygraph`
    "T_Action": ("kaygraph.core.generics", "T_Action"),
    "T_ExecRes": ("kaygraph.core.generics", "T_ExecRes"),
    "T_Params": ("kaygraph.core.generics", "T_Params"),
    "T_PrepRes": ("kaygraph.core.generics", "T_PrepRes"),
    "T_Shared": ("kaygraph.core.generics", "T_Shared"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'kaygraph' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AsyncBatchGraph",
    "AsyncBatchNode",
    "AsyncGraph",
    "AsyncInteractiveGraph",
    "AsyncNode",
    "AsyncParallelBatchGraph",
    "AsyncParallelBatchNode",
    "BaseNode",
    "BatchGraph",
    "BatchNode",
    "CancelToken",
    "ConditionalSubGraphNode",
    "Config",
    "Graph",
    "GraphDefinitionError",
    "GraphExecutionError",
    "GraphReferenceError",
    "InteractiveGraph",
    "InteractiveNode",
    "KayGraphError",
    "MetricsNode",
    "Node",
    "NodeExecutionError",
    "ParallelBatchNode",
    "ParallelSubGraphNode",
    "PersistentGraph",
    "ResumePoint",
    "RunCancelled",
    "RunContext",
    "RunListener",
    "SubGraphNode",
    "T_Action",
    "T_ExecRes",
    "T_Params",
    "T_PrepRes",
    "T_Shared",
    "UserInputNode",
    "ValidatedNode",
    "ValidationError",
    "__version__",
    "add_listener",
    "compose_graphs",
    "configure",
    "export_workflow",
    "ext",
    "get_config",
    "get_listeners",
    "graph_to_yaml",
    "list_extensions",
    "load_graph",
    "load_workflow",
    "plugins",
    "remove_listener",
    "show_info",
    "validate_workflow",
    "yaml_to_graph",
]
