"""The interface every executor implements: the core's executor seam, plus a lifecycle.

The core (``kaygraph.core.executor``) asks an executor only for ``submit(fn, *args)`` returning a
:class:`concurrent.futures.Future`, and uses ``chunk_size(n)``, ``max_in_flight`` and
``supports_resources`` when present. :class:`ClusterExecutor` adds what a user needs around that:
``start``/``close`` (or ``with``), the number of worker slots, and ``describe`` for ``kaygraph info``.

Implementations (one module each under ``executors/``): ``ProcessExecutor`` (stdlib process
pool, no cluster), ``DaskExecutor`` (``dask.distributed``), ``RayExecutor`` (Ray).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

_Executor = TypeVar("_Executor", bound="ClusterExecutor")


class ClusterExecutor(ABC):
    """Runs pickled calls on workers and hands back a Future per call.

    Errors of the call come back through the Future (with the worker's traceback as a note); a
    worker that dies is the engine's business (it reruns the task elsewhere) and does not show
    up unless the engine gives up. Thread-safe: the core submits from several threads.
    """

    #: ``submit`` accepts ``resources={"GPU": 1, "memory": 4e9}`` (checked against the workers).
    supports_resources: bool = True

    #: How many submitted calls may be unfinished at once (None: the caller decides).
    max_in_flight: int | None = None

    @abstractmethod
    def submit(
        self, fn: Callable[..., Any], /, *args: Any, resources: Mapping[str, float] | None = None
    ) -> Future[Any]:
        """Run ``fn(*args)`` on a worker. Raises ``UnpicklableError`` before submitting anything
        that cannot be pickled, ``ResourceUnavailableError`` when no worker has ``resources``."""

    @abstractmethod
    def chunk_size(self, n_items: int) -> int:
        """How many of ``n_items`` batch items go into one task (>= 1)."""

    @property
    @abstractmethod
    def workers(self) -> int:
        """Worker slots: how many tasks run at the same time (starts the executor if needed)."""

    @abstractmethod
    def start(self: _Executor) -> _Executor:
        """Connect to (or start) the cluster now instead of at the first ``submit``; returns self."""

    @abstractmethod
    def close(self) -> None:
        """Cancel what is still pending and release the cluster (a local one is shut down)."""

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """Status lines: engine, address, workers, chunking (for ``kaygraph info`` and logs)."""

    def __enter__(self: _Executor) -> _Executor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["ClusterExecutor"]
