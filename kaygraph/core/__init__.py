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
from .events import ResumePoint, RunContext, RunListener, add_listener, get_listeners, remove_listener
from .exceptions import (
    GraphDefinitionError,
    GraphExecutionError,
    KayGraphError,
    NodeExecutionError,
    ValidationError,
)
from .graph import Graph
from .metrics_node import MetricsNode
from .node import Node
from .validated_node import ValidatedNode

__version__ = "1.0.0"

__all__ = [
    "BaseNode",
    "Node",
    "Graph",
    "BatchNode",
    "ParallelBatchNode",
    "BatchGraph",
    "AsyncNode",
    "AsyncBatchNode",
    "AsyncParallelBatchNode",
    "AsyncGraph",
    "AsyncBatchGraph",
    "AsyncParallelBatchGraph",
    "ValidatedNode",
    "MetricsNode",
    "RunListener",
    "RunContext",
    "ResumePoint",
    "add_listener",
    "remove_listener",
    "get_listeners",
    "KayGraphError",
    "NodeExecutionError",
    "GraphExecutionError",
    "GraphDefinitionError",
    "ValidationError",
    "__version__",
]
