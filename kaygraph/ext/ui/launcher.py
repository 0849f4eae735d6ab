"""Runs the dashboard starts, cancels, resumes and forks: durable runs on worker threads.

A run started here executes in the dashboard's process on a daemon thread, checkpointed to the
same store the dashboard reads, so it shows up (and streams) exactly like a run started elsewhere.
Cancelling one of these trips its :class:`~kaygraph.CancelToken`; a run executing in another
process is asked to stop through the store (when the persistence extension supports it).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import uuid
from typing import Any

from kaygraph.core.exceptions import KayGraphError, RunNotFoundError

from .errors import ApiError
from .graphs import GraphCatalog

logger = logging.getLogger("kaygraph.ext.ui")


def _persistence() -> Any:
    import kaygraph.ext.persistence as persistence

    return persistence


class Launcher:
    """Starts and steers durable runs of the catalog's graphs on ``store``."""

    def __init__(self, store: Any, catalog: GraphCatalog, *, serializer: Any = None) -> None:
        self.store = store
        self.catalog = catalog
        self.serializer = serializer
        self._lock = threading.Lock()
        self._active: dict[str, tuple[threading.Thread, Any]] = {}

    # -- helpers -------------------------------------------------------------------------------

    def _runner(self, graph_name: str, params: dict[str, Any] | None = None) -> Any:
        import copy

        graph = self.catalog.get(graph_name)
        if params:
            graph = copy.copy(graph)  # params are per run; the served graph stays untouched
            graph.set_params(dict(params))
        return _persistence().durable(graph, self.store, serializer=self.serializer)

    def _spawn(self, run_id: str, target: Any, *args: Any) -> None:
        token = _new_token()

        def work() -> None:
            try:
                _call_with_cancel(target, token, *args)
            except KayGraphError as exc:
                logger.info("kaygraph ui: run %s ended: %s", run_id, exc)
            except Exception:
                logger.exception("kaygraph ui: run %s failed", run_id)
            finally:
                with self._lock:
                    self._active.pop(run_id, None)

        thread = threading.Thread(target=work, name=f"kaygraph-ui-run-{run_id}", daemon=True)
        with self._lock:
            self._active[run_id] = (thread, token)
        thread.start()

    def active(self) -> list[str]:
        """Ids of the runs executing in this process."""
        with self._lock:
            return list(self._active)

    def wait(self, run_id: str, timeout: float | None = None) -> None:
        """Block until run ``run_id`` (started here) has finished (tests, shutdown)."""
        with self._lock:
            entry = self._active.get(run_id)
        if entry is not None:
            entry[0].join(timeout)

    # -- actions -------------------------------------------------------------------------------

    def start(
        self,
        graph_name: str,
        shared: dict[str, Any],
        *,
        params: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Start a durable run of ``graph_name`` on ``shared``; returns its run id at once."""
        runner = self._runner(graph_name, params)
        run_id = run_id or uuid.uuid4().hex[:16]
        if self.store.get_run(run_id) is not None:
            raise ApiError(
                409, f"a run with id {run_id!r} already exists; pick another run_id", culprit="run_id"
            )
        self._spawn(run_id, functools.partial(runner.run, shared, run_id=run_id))
        return run_id

    def cancel(self, run_id: str, reason: str) -> str:
        """Cancel ``run_id``: at once when it runs here, else through the store; returns how.

        A run that is not running (also one this process already cancelled, whose thread is still
        winding down) is a 409: there is nothing left to cancel.
        """
        with self._lock:
            entry = self._active.get(run_id)
        token = entry[1] if entry is not None else None
        info = self.store.get_run(run_id)
        if info is None and entry is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self.store.describe()}", run_id=run_id)
        if token is not None and token.cancelled:
            raise ApiError(
                409, f"run {run_id!r} is already being cancelled ({token.reason})", culprit="run_id"
            )
        if info is not None and info.status != "running":
            raise ApiError(
                409, f"run {run_id!r} is {info.status}, not running: nothing to cancel", culprit="run_id"
            )
        if token is not None:
            token.cancel(reason)
            return "cancelled"
        request = getattr(_persistence(), "request_cancel", None)
        if request is None:
            raise ApiError(
                409,
                f"run {run_id!r} is executing in another process and this persistence version cannot "
                "ask it to stop; cancel it where it runs",
                culprit="run_id",
            )
        request(self.store, run_id, reason)
        return "requested"

    def resume(self, run_id: str) -> str:
        """Resume the unfinished run ``run_id`` here, with its graph from the catalog."""
        info = self.store.get_run(run_id)
        if info is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self.store.describe()}", run_id=run_id)
        if info.status == "succeeded":
            raise ApiError(
                409, f"run {run_id!r} already succeeded; fork it to run it again", culprit="run_id"
            )
        with self._lock:
            if run_id in self._active:
                raise ApiError(409, f"run {run_id!r} is already running in this dashboard", culprit="run_id")
        if info.graph_name not in self.catalog:
            raise ApiError(
                409,
                f"run {run_id!r} belongs to graph {info.graph_name!r}, which this dashboard does not serve; "
                f"start it with --graphs <module>:<attr> for that graph",
                culprit="graph",
            )
        runner = self._runner(info.graph_name)
        self._spawn(run_id, runner.resume, run_id)
        return run_id

    def fork(self, run_id: str, step: int, patch: dict[str, Any] | None) -> str:
        """A new run continuing ``run_id`` from after step ``step`` with ``patch`` applied to the state."""
        info = self.store.get_run(run_id)
        if info is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self.store.describe()}", run_id=run_id)
        if info.graph_name not in self.catalog:
            raise ApiError(
                409,
                f"run {run_id!r} belongs to graph {info.graph_name!r}, which this dashboard does not serve",
                culprit="graph",
            )
        forked = _persistence().fork_run(
            self.store, run_id, step=step, patch=patch, serializer=self.serializer
        )
        new_id: str = forked.run_id
        self._spawn(new_id, self._runner(info.graph_name).resume, new_id)
        return new_id


def _new_token() -> Any:
    from kaygraph import CancelToken

    return CancelToken()


def _call_with_cancel(target: Any, token: Any, *args: Any) -> Any:
    """``target(*args, cancel=token)`` when the runner takes a cancel token, else ``target(*args)``."""
    if token is not None and "cancel" in inspect.signature(target).parameters:
        return target(*args, cancel=token)
    return target(*args)


__all__ = ["Launcher"]
