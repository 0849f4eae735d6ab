"""Distributed execution: batch items, remote nodes and whole runs on Dask or Ray (or local processes).

    from kaygraph.ext.distributed import DaskExecutor, run_many

    with DaskExecutor() as ex:                      # a local cluster; DaskExecutor("tcp://host:8786")
        graph.run(shared, executor=ex)              # each batch item's exec runs on the cluster
        outcomes = run_many(graph, inputs, executor=ex)

Executors (``kaygraph.ext.distributed.executors.<module>``): ``ProcessExecutor`` (process,
stdlib), ``DaskExecutor`` (dask), ``RayExecutor`` (ray); pick one with a URL
(:func:`open_executor`) or the ``distributed.*`` configuration. Names are loaded on first use,
so importing this package loads neither Dask nor Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaygraph.ext.base import PackageExtension, register_extension
from kaygraph.utils.imports import lazy_exports

if TYPE_CHECKING:
    from .abc import ClusterExecutor
    from .base import BaseExecutor, EngineFuture
    from .errors import (
        DistributedError,
        ExecutorClosedError,
        ExecutorConnectionError,
        RemoteError,
        ResourceUnavailableError,
        UnpicklableError,
        WorkerLostError,
    )
    from .executors.dask import DaskExecutor
    from .executors.process import ProcessExecutor
    from .executors.ray import RayExecutor
    from .factory import open_executor
    from .many import RunOutcome, run_many
    from .pickling import find_unpicklable

__version__ = "1.0.0"

_EXPORTS = {
    "ClusterExecutor": "abc",
    "BaseExecutor": "base",
    "EngineFuture": "base",
    "DistributedError": "errors",
    "ExecutorClosedError": "errors",
    "ExecutorConnectionError": "errors",
    "RemoteError": "errors",
    "ResourceUnavailableError": "errors",
    "UnpicklableError": "errors",
    "WorkerLostError": "errors",
    "DaskExecutor": "executors.dask",
    "ProcessExecutor": "executors.process",
    "RayExecutor": "executors.ray",
    "open_executor": "factory",
    "RunOutcome": "many",
    "run_many": "many",
    "find_unpicklable": "pickling",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def _describe() -> dict[str, str]:
    """``kaygraph info``: the configured executor; executors connect when first used."""
    from kaygraph.utils.urls import redact_url

    from .factory import setting

    kind = setting("executor")
    address = setting("address")
    lines = {"executor": kind}
    if kind == "local":
        lines["executor"] = "local (in this process; pass executor= or set distributed.executor)"
        return lines
    if kind == "process":
        lines["address"] = "local processes"
    else:
        lines["address"] = redact_url(address) if address else "local cluster on 127.0.0.1"
    if kind == "process" or not address:
        lines["workers"] = str(setting("workers") or "one per CPU")
    lines["chunk_size"] = str(setting("chunk_size") or "auto")
    lines["max_in_flight"] = str(setting("max_in_flight") or "2 per worker slot")
    return lines


register_extension(PackageExtension("distributed", __version__, describe=_describe))

__all__ = [
    "BaseExecutor",
    "ClusterExecutor",
    "DaskExecutor",
    "DistributedError",
    "EngineFuture",
    "ExecutorClosedError",
    "ExecutorConnectionError",
    "ProcessExecutor",
    "RayExecutor",
    "RemoteError",
    "ResourceUnavailableError",
    "RunOutcome",
    "UnpicklableError",
    "WorkerLostError",
    "find_unpicklable",
    "open_executor",
    "run_many",
]
