"""Fire lag, missed and skipped fires: kept for :meth:`Scheduler.stats`, and exported as Prometheus
metrics and span attributes when the observability extension is on (``instrument()``).

Metrics (labels in brackets)::

    kaygraph_scheduler_fire_lag_seconds   histogram [schedule]          due time to the run's first node
    kaygraph_scheduler_fires_total        counter   [schedule, status]  fires that ended, by status
    kaygraph_scheduler_fires_missed_total counter   [schedule]          not run: catch-up policy / max_age
    kaygraph_scheduler_fires_skipped_total counter  [schedule]          not run: overlap="skip"
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from kaygraph.core.events import RunListener

from .abc import Fire

_families: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_families_lock = threading.Lock()


def _metrics() -> dict[str, Any] | None:
    """The scheduler's metric families in the active observability registry, or None when off."""
    import sys

    module = sys.modules.get("kaygraph.ext.observability._instrument")
    current = module.current() if module is not None else None
    listener = getattr(current, "metrics", None)
    if listener is None:
        return None
    registry = listener.registry
    with _families_lock:
        families = _families.get(registry)
        if families is None:
            import prometheus_client as prom

            from kaygraph.ext.observability.metrics import DEFAULT_BUCKETS

            families = {
                "lag": prom.Histogram(
                    "kaygraph_scheduler_fire_lag_seconds",
                    "Due time of a fire to its run's first node",
                    ["schedule"],
                    registry=registry,
                    buckets=DEFAULT_BUCKETS,
                ),
                "fires": prom.Counter(
                    "kaygraph_scheduler_fires",
                    "Fires that ended, by status",
                    ["schedule", "status"],
                    registry=registry,
                ),
                "missed": prom.Counter(
                    "kaygraph_scheduler_fires_missed",
                    "Fires not run after downtime (catchup / max_age)",
                    ["schedule"],
                    registry=registry,
                ),
                "skipped": prom.Counter(
                    "kaygraph_scheduler_fires_skipped",
                    "Fires not run because the previous one still ran",
                    ["schedule"],
                    registry=registry,
                ),
            }
            _families[registry] = families
    return families


class FireObserver(RunListener):
    """Listens to the scheduler's runs: times each fire's first node against its due time."""

    def __init__(self, keep: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._expected: dict[str, Fire] = {}
        self._lock = threading.Lock()
        #: The most recent fire lags in seconds (bounded).
        self.lags: collections.deque[float] = collections.deque(maxlen=keep)
        self.missed = 0
        self.skipped = 0
        self.ended: collections.Counter[str] = collections.Counter()

    def expect(self, fire: Fire) -> None:
        """The next run with id ``fire.fire_id`` is this fire: time its first node."""
        with self._lock:
            self._expected[fire.fire_id] = fire

    def on_node_start(self, *, run: Any, **kwargs: Any) -> None:
        run_id = getattr(run, "run_id", None) or kwargs.get("run_id")
        if run_id is None or run_id not in self._expected:
            return
        with self._lock:
            fire = self._expected.pop(run_id, None)
        if fire is None:
            return
        lag = self.clock() - fire.due_at
        self.lags.append(lag)
        families = _metrics()
        if families is not None:
            families["lag"].labels(fire.schedule).observe(max(lag, 0.0))
        _span_attributes(fire, lag)

    def planned(self, schedule: str, missed: int, skipped: int) -> None:
        """A pass dropped ``missed`` fires (catch-up) and recorded ``skipped`` ones (overlap)."""
        if not (missed or skipped):
            return
        self.missed += missed
        self.skipped += skipped
        families = _metrics()
        if families is not None:
            if missed:
                families["missed"].labels(schedule).inc(missed)
            if skipped:
                families["skipped"].labels(schedule).inc(skipped)

    def finished(self, fire: Fire) -> None:
        """``fire`` ended (or was handed back) with ``fire.status``."""
        with self._lock:
            self._expected.pop(fire.fire_id, None)
        self.ended[fire.status] += 1
        families = _metrics()
        if families is not None:
            families["fires"].labels(fire.schedule, fire.status).inc()


def _span_attributes(fire: Fire, lag: float) -> None:
    import sys

    if "opentelemetry.trace" not in sys.modules:
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("kaygraph.schedule", fire.schedule)
        span.set_attribute("kaygraph.fire_id", fire.fire_id)
        span.set_attribute("kaygraph.fire_lag_seconds", lag)


__all__ = ["FireObserver"]
