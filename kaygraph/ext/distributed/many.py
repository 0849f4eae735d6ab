"""``run_many``: whole runs of one graph, one per input shared store, spread over the workers.

Each worker rebuilds the graph from its reference (``graph.graph_ref``, set by
``kaygraph.load_graph``) or receives it pickled, once per task, then runs it on its input.
A failing run does not stop the others: every input gets a :class:`RunOutcome` with the shared
store as the run left it and the last action, or the error (with the worker's traceback as a
note). At most ``max_in_flight`` runs are unfinished at once, so a million inputs never sit in
the cluster's memory together.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from . import pickling
from .abc import ClusterExecutor
from .errors import DistributedError, UnpicklableError

_graphs: OrderedDict[str, Any] = OrderedDict()  # per worker process: rebuilt graphs, newest last
_GRAPH_CACHE_SIZE = 8


@dataclass(frozen=True)
class RunOutcome:
    """What one run of :func:`run_many` gave: ``shared`` and ``action`` on success, else ``error``."""

    index: int
    shared: Any
    action: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _graph_for(spec: str | bytes) -> Any:
    """The graph a task names: loaded from its reference, or unpickled (cached per worker process)."""
    key = spec if isinstance(spec, str) else hashlib.sha256(spec).hexdigest()
    graph = _graphs.get(key)
    if graph is None:
        if isinstance(spec, str):
            import kaygraph

            graph = kaygraph.load_graph(spec)
        else:
            graph = pickle.loads(spec)
        _graphs[key] = graph
        while len(_graphs) > _GRAPH_CACHE_SIZE:
            _graphs.popitem(last=False)
    return graph


def run_graph(spec: str | bytes, shared: Any) -> tuple[Any, Any]:
    """Run the graph ``spec`` names on ``shared``; the task :func:`run_many` submits."""
    action = _graph_for(spec).run(shared)
    return shared, action


def _spec(graph: Any) -> str | bytes:
    ref = getattr(graph, "graph_ref", None)
    if isinstance(ref, str):
        return ref
    try:
        return pickling.dumps(graph)
    except Exception as exc:
        raise pickling.unpicklable_error(run_graph, (graph,), exc) from exc


def _unpicklable_input(index: int, shared: Any, error: UnpicklableError) -> UnpicklableError:
    found = pickling.find_unpicklable(shared, "shared")
    if found is None:
        return error
    path, culprit, cause, _ = found
    kind = f"{type(culprit).__module__}.{type(culprit).__qualname__}".removeprefix("builtins.")
    return UnpicklableError(
        f"input {index} of run_many cannot be sent to the workers: {path} is a {kind}, which cannot be "
        f"pickled ({type(cause).__name__}: {cause}). Put only data that pickles in the shared store; "
        "the other inputs ran.",
        path=path,
        culprit_type=kind,
    )


def _cancelled_error(cancel: Any) -> BaseException:
    from kaygraph.core.exceptions import RunCancelled

    why = f": {cancel.reason}" if getattr(cancel, "reason", None) else ""
    return RunCancelled(f"run_many was cancelled before this run finished{why}", reason=cancel.reason)


def run_many(
    graph: Any,
    inputs: Iterable[Any],
    *,
    executor: ClusterExecutor | str | None = None,
    max_in_flight: int | None = None,
    cancel: Any = None,
) -> list[RunOutcome]:
    """Run ``graph`` once per input shared store on ``executor``; one :class:`RunOutcome` per input, in order.

    ``executor`` may be an executor, a URL (``"dask"``, ``"tcp://host:8786"``...) or None for the
    ``distributed.*`` configuration (``local`` runs the inputs one after another in this
    process). An executor created here is closed at the end; one you pass stays open.
    ``cancel`` (a ``kaygraph.CancelToken``) stops submitting and cancels runs not yet finished.
    Inputs are read lazily, as slots free up.
    """
    from .factory import open_executor

    owned = not isinstance(executor, ClusterExecutor)
    ex = open_executor(executor)
    try:
        if ex is None:
            return [_run_here(graph, index, shared, cancel) for index, shared in enumerate(inputs)]
        return _run_on(ex, graph, inputs, max_in_flight, cancel)
    finally:
        if owned and ex is not None:
            ex.close()


def _run_here(graph: Any, index: int, shared: Any, cancel: Any) -> RunOutcome:
    if cancel is not None and cancel.cancelled:
        return RunOutcome(index, shared, error=_cancelled_error(cancel))
    try:
        return RunOutcome(index, shared, graph.run(shared, cancel=cancel))
    except Exception as exc:
        return RunOutcome(index, shared, error=exc)


def _run_on(
    ex: ClusterExecutor, graph: Any, inputs: Iterable[Any], max_in_flight: int | None, cancel: Any
) -> list[RunOutcome]:
    spec = _spec(graph)
    limit = max_in_flight or ex.max_in_flight or 2 * ex.workers
    if limit < 1:
        raise ValueError(f"run_many: max_in_flight must be >= 1, got {limit!r}")
    outcomes: dict[int, RunOutcome] = {}
    running: dict[Future[Any], tuple[int, Any]] = {}
    count = 0

    def collect(done: Iterable[Future[Any]]) -> None:
        for future in done:
            index, shared = running.pop(future)
            if future.cancelled():
                outcomes[index] = RunOutcome(index, shared, error=_cancelled_error(cancel))
            elif future.exception() is not None:
                outcomes[index] = RunOutcome(index, shared, error=future.exception())
            else:
                result_shared, action = future.result()
                outcomes[index] = RunOutcome(index, result_shared, action)

    stopped = False
    for index, shared in enumerate(inputs):
        count = index + 1
        if stopped or (cancel is not None and cancel.cancelled):
            stopped = True
            outcomes[index] = RunOutcome(index, shared, error=_cancelled_error(cancel))
            continue
        while len(running) >= limit:
            done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
            collect(done)
            if cancel is not None and cancel.cancelled:
                for future in list(running):
                    future.cancel()
        try:
            running[ex.submit(run_graph, spec, shared)] = (index, shared)
        except UnpicklableError as exc:  # this input cannot travel: the others go on
            outcomes[index] = RunOutcome(index, shared, error=_unpicklable_input(index, shared, exc))
        except DistributedError as exc:
            outcomes[index] = RunOutcome(index, shared, error=exc)
    while running:
        done, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
        collect(done)
        if cancel is not None and cancel.cancelled:
            for future in list(running):
                future.cancel()
    return [outcomes[index] for index in range(count)]


__all__ = ["RunOutcome", "run_graph", "run_many"]
