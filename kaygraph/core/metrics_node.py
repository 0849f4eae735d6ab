"""MetricsNode: a Node that keeps execution statistics across every run of its graph."""

from __future__ import annotations

import time
from _thread import allocate_lock

from .node import Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any



class _Stats:
    """Counters shared by a node and the per-step copies the graph makes of it."""

    __slots__ = ("durations", "executions", "failures", "lock", "retries", "successes")

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.executions = 0
        self.successes = 0
        self.failures = 0
        self.retries = 0
        self.durations: list[float] = []


class MetricsNode(Node):
    """A Node that times each ``exec`` (retries included) and counts successes, failures and retries.

    Statistics are shared by every run of the graph (thread-safe); read them with
    :meth:`get_stats`, clear them with :meth:`reset_stats`. ``keep`` bounds how many durations
    are kept for the percentiles.
    """

    def __init__(
        self, max_retries: int = 1, wait: float = 0, *, node_id: str | None = None, keep: int = 1000
    ) -> None:
        super().__init__(max_retries, wait, node_id=node_id)
        self._stats = _Stats()
        self._keep = keep

    def _exec(self, prep_res: Any) -> Any:
        started = time.perf_counter()
        ok = False
        try:
            result = super()._exec(prep_res)
            ok = True
            return result
        finally:
            elapsed = time.perf_counter() - started
            stats = self._stats
            with stats.lock:
                stats.executions += 1
                stats.retries += self.cur_retry
                if ok:
                    stats.successes += 1
                else:
                    stats.failures += 1
                stats.durations.append(elapsed)
                if len(stats.durations) > self._keep:
                    del stats.durations[: len(stats.durations) - self._keep]

    def get_stats(self) -> dict[str, Any]:
        """Counts, success rate, and exec time (seconds: total, mean, min, max, p50, p95)."""
        stats = self._stats
        with stats.lock:
            durations = sorted(stats.durations)
            executions = stats.executions
            summary: dict[str, Any] = {
                "node_id": self.node_id,
                "executions": executions,
                "successes": stats.successes,
                "failures": stats.failures,
                "retries": stats.retries,
                "success_rate": stats.successes / executions if executions else None,
            }
        if durations:
            summary.update(
                total_time=sum(durations),
                avg_time=sum(durations) / len(durations),
                min_time=durations[0],
                max_time=durations[-1],
                p50_time=durations[len(durations) // 2],
                p95_time=durations[min(len(durations) - 1, int(len(durations) * 0.95))],
            )
        return summary

    def reset_stats(self) -> None:
        """Forget all statistics collected so far."""
        stats = self._stats
        with stats.lock:
            stats.executions = stats.successes = stats.failures = stats.retries = 0
            stats.durations.clear()
