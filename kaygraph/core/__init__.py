"""KayGraph core: nodes, graphs, batch and async variants, lifecycle events, errors.

Standard library only, and nothing from ``kaygraph.ext``: the whole engine can be read in one
sitting.
"""

from __future__ import annotations

from .async_node import (
    AsyncBatchGraph,
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
)
from .base_node import BaseNode
from .batch_node import BatchGraph, BatchNode, ParallelBatchNode
from .cancel import CancelToken
from .events import ResumePoint, RunContext, RunListener, add_listener, get_listeners, remove_listener
from .exceptions import (
    GraphDefinitionError,
    GraphExecutionError,
    GraphReferenceError,
    KayGraphError,
    NodeExecutionError,
    RunCancelled,
    ValidationError,
)
from .graph import Graph
from .loading import load_graph
from .metrics_node import MetricsNode
from .node import Node
from .node_config import Config
from .validated_node import ValidatedNode

__version__ = "1.0.0"

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any

    from .generics import T_Action, T_ExecRes, T_Params, T_PrepRes, T_Shared


def __getattr__(name: str) -> Any:
    """0.3's type aliases (``T_Shared``, ...), built on first use so ``typing`` loads only then."""
    from . import generics

    if name in generics.ALIASES:
        return getattr(generics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AsyncBatchGraph",
    "AsyncBatchNode",
    "AsyncGraph",
    "AsyncNode",
    "AsyncParallelBatchGraph",
    "AsyncParallelBatchNode",
    "BaseNode",
    "BatchGraph",
    "BatchNode",
    "CancelToken",
    "Config",
    "Graph",
    "GraphDefinitionError",
    "GraphExecutionError",
    "GraphReferenceError",
    "KayGraphError",
    "MetricsNode",
    "Node",
    "NodeExecutionError",
    "ParallelBatchNode",
    "ResumePoint",
    "RunCancelled",
    "RunContext",
    "RunListener",
    "T_Action",
    "T_ExecRes",
    "T_Params",
    "T_PrepRes",
    "T_Shared",
    "ValidatedNode",
    "ValidationError",
    "__version__",
    "add_listener",
    "get_listeners",
    "load_graph",
    "remove_listener",
]
