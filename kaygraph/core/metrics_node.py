"""MetricsNode: a Node that keeps execution statistics across every run of its graph."""

from __future__ import annotations

import time
from _thread import allocate_lock

from .exceptions import GraphDefinitionError
from .node import Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any

_NO_EXECUTIONS = "no_executions"


class MetricsNode(Node):
    """A Node that times each step (``prep``, ``exec`` with its retries, ``post``) and counts
    successes, failures and retries, as KayGraph 0.3 did.

    ``MetricsNode(collect_metrics=True, *args, **kwargs)``: the other arguments go to
    :class:`Node` (``max_retries``, ``wait``, ``node_id``, ``config``). Statistics are shared by
    every run and every thread of the graph; :meth:`get_stats` summarises them, :meth:`reset_stats`
    clears them, ``self.metrics`` holds the raw lists and counters. ``keep`` bounds how many
    durations (and retry counts) the lists hold, so a long-lived service does not grow without
    end; the totals, mean, min and max stay exact. ``keep=None`` keeps every one, as 0.3 did.
    """

    def __init__(
        self, collect_metrics: bool = True, *args: Any, keep: int | None = 1000, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
            raise GraphDefinitionError(
                f"{type(self).__name__}: keep must be an int >= 1 or None (keep all), got {keep!r}"
            )
        self.collect_metrics = collect_metrics
        self._keep = keep
        self._metrics_lock = allocate_lock()  # shared with the per-step copies, like the dict
        self.metrics: dict[str, Any] = {}
        self._clear()

    def _clear(self) -> None:
        # The lists are emptied in place: per-step copies and callers holding them see the reset.
        metrics = self.metrics
        for name in ("execution_times", "retry_counts"):
            values = metrics.setdefault(name, [])
            values.clear()
        metrics.update(success_count=0, error_count=0)
        totals = getattr(self, "_totals", None)
        if totals is None:
            self._totals = _Totals()
        else:
            totals.reset()

    def _run(self, shared: Any) -> Any:
        if not self.collect_metrics:
            return super()._run(shared)
        started = time.perf_counter()
        ok = False
        try:
            action = super()._run(shared)
            ok = True
            return action
        finally:
            self._record(time.perf_counter() - started, ok)

    def _record(self, elapsed: float, ok: bool) -> None:
        retries = getattr(self, "cur_retry", 0)
        metrics = self.metrics
        with self._metrics_lock:
            totals = self._totals
            totals.add(elapsed, retries)
            metrics["success_count" if ok else "error_count"] += 1
            for name, value in (("execution_times", elapsed), ("retry_counts", retries)):
                values = metrics[name]
                values.append(value)
                if self._keep is not None and len(values) > self._keep:
                    del values[: len(values) - self._keep]

    def get_stats(self) -> dict[str, Any]:
        """0.3's summary (``total_executions``, ``success_rate``, ``avg_execution_time``,
        ``min_execution_time``, ``max_execution_time``, ``total_retries``; seconds), plus
        ``node_id``, ``successes``, ``failures`` and ``p50_time``/``p95_time`` over the kept
        durations. Before any step: ``{"status": "no_executions"}``."""
        with self._metrics_lock:
            totals = self._totals
            successes = self.metrics["success_count"]
            failures = self.metrics["error_count"]
            durations = sorted(self.metrics["execution_times"])
        if not totals.count:
            return {"status": _NO_EXECUTIONS}
        return {
            "total_executions": totals.count,
            "success_rate": successes / totals.count,
            "avg_execution_time": totals.total_time / totals.count,
            "min_execution_time": totals.min_time,
            "max_execution_time": totals.max_time,
            "total_retries": totals.retries,
            "node_id": self.node_id,
            "successes": successes,
            "failures": failures,
            "total_time": totals.total_time,
            "p50_time": durations[len(durations) // 2],
            "p95_time": durations[min(len(durations) - 1, int(len(durations) * 0.95))],
        }

    def reset_stats(self) -> None:
        """Forget all statistics collected so far."""
        with self._metrics_lock:
            self._clear()


class _Totals:
    """Exact running aggregates, independent of how many durations the lists keep."""

    __slots__ = ("count", "max_time", "min_time", "retries", "total_time")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.retries = 0
        self.total_time = 0.0
        self.min_time = float("inf")
        self.max_time = 0.0

    def add(self, elapsed: float, retries: int) -> None:
        self.count += 1
        self.retries += retries
        self.total_time += elapsed
        self.min_time = min(self.min_time, elapsed)
        self.max_time = max(self.max_time, elapsed)
