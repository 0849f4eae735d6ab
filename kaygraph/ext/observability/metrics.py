"""Prometheus metrics for every run: durations, retries, errors, runs in progress.

:class:`MetricsListener` records into its own ``CollectorRegistry`` by default, so tests and two
apps in one process never collide; pass ``registry=prometheus_client.REGISTRY`` to share the
process-wide one. Serve it with :func:`serve_metrics` (a background HTTP server, by default on
127.0.0.1:9090) or mount :meth:`MetricsListener.wsgi_app` / :meth:`MetricsListener.asgi_app` in
the web app you already run.

Metrics (labels in brackets)::

    kaygraph_node_duration_seconds   histogram  [graph, node, status]   one observation per node step
    kaygraph_node_retries_total      counter    [graph, node]           failed attempts that were retried
    kaygraph_node_errors_total       counter    [graph, node, error_type]
    kaygraph_graph_runs_total        counter    [graph, status]
    kaygraph_graph_duration_seconds  histogram  [graph, status]
    kaygraph_runs_in_progress        gauge      [graph]

``graph`` is the top-level graph's name, ``node`` the node's id with the ids of its enclosing
graphs (``ingest/embed``) and never a batch index, ``status`` is ``ok`` or ``error``: every label
has a bounded set of values, so cardinality cannot grow with traffic. A failing node inside a
nested graph counts as an error of the node and of each graph node it propagates through.
"""

from __future__ import annotations

import errno
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kaygraph.core import RunListener
from kaygraph.core.exceptions import ObservabilityError
from kaygraph.utils.imports import require_package

from ._common import EXTRA, node_label

_prometheus = require_package("prometheus_client", EXTRA, "KayGraph metrics", package="prometheus-client")

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kaygraph.core.events import Path, RunContext
    from kaygraph.core.graph import Graph

__all__ = ["DEFAULT_BUCKETS", "MetricsListener", "MetricsServer", "serve_metrics"]

#: Histogram buckets (seconds) for LLM work: a cache hit in milliseconds to a long generation or
#: agent loop in minutes. Prometheus' defaults stop at 10 s, where LLM calls only begin.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
)


class _KayGraphMetrics:
    """The metric families of one registry, created once and shared by every listener using it.

    prometheus_client refuses to register a name twice in one registry, so a second listener (or
    ``instrument()`` called again) on the same registry reuses these instead of failing.
    """

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.node_duration = _prometheus.Histogram(
            "kaygraph_node_duration_seconds",
            "Duration of one node step (prep, exec with its retries, post), by outcome.",
            ["graph", "node", "status"],
            buckets=buckets,
            registry=registry,
        )
        self.node_retries = _prometheus.Counter(
            "kaygraph_node_retries",
            "Failed exec attempts that were retried.",
            ["graph", "node"],
            registry=registry,
        )
        self.node_errors = _prometheus.Counter(
            "kaygraph_node_errors",
            "Node steps that failed, by exception class.",
            ["graph", "node", "error_type"],
            registry=registry,
        )
        self.graph_runs = _prometheus.Counter(
            "kaygraph_graph_runs",
            "Finished top-level graph runs, by outcome.",
            ["graph", "status"],
            registry=registry,
        )
        self.graph_duration = _prometheus.Histogram(
            "kaygraph_graph_duration_seconds",
            "Duration of a top-level graph run, by outcome.",
            ["graph", "status"],
            buckets=buckets,
            registry=registry,
        )
        self.runs_in_progress = _prometheus.Gauge(
            "kaygraph_runs_in_progress",
            "Top-level graph runs started and not yet finished.",
            ["graph"],
            registry=registry,
        )
        # Labelled children by label values: `labels()` takes a lock and builds a key each call.
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, family: Any, *label_values: str) -> Any:
        """The child of ``family`` for ``label_values``, cached (a race only makes it twice)."""
        key = (id(family), *label_values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*label_values)
        return child


_metrics_by_registry: weakref.WeakKeyDictionary[Any, _KayGraphMetrics] = weakref.WeakKeyDictionary()


def _metrics_for(registry: CollectorRegistry, buckets: tuple[float, ...]) -> _KayGraphMetrics:
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _metrics_by_registry[registry] = _KayGraphMetrics(registry, buckets)
    elif metrics.buckets != buckets:
        raise ObservabilityError(
            f"the KayGraph metrics of this registry already use buckets {metrics.buckets}, not "
            f"{buckets}; a histogram's buckets cannot change once registered. Use the same buckets "
            "or a new CollectorRegistry"
        )
    return metrics


class MetricsListener(RunListener):
    """Records Prometheus metrics for every run it observes (metric list in the module docs).

    ``registry``: where the metrics live; None makes a private ``CollectorRegistry`` (available as
    ``listener.registry``). ``buckets``: histogram bounds in seconds, default
    :data:`DEFAULT_BUCKETS`.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, buckets: tuple[float, ...] = DEFAULT_BUCKETS
    ) -> None:
        self.registry: CollectorRegistry = _prometheus.CollectorRegistry() if registry is None else registry
        self.metrics = _metrics_for(self.registry, tuple(buckets))
        # The hot path (a node step that succeeded) skips the generic cache: (graph, node) -> child.
        self._ok_durations: dict[tuple[Any, ...], Any] = {}

    def on_run_start(self, *, graph: Graph, **kwargs: Any) -> None:
        metrics = self.metrics
        metrics.child(metrics.runs_in_progress, graph.name).inc()

    def on_run_end(
        self, *, graph: Graph, error: BaseException | None, duration: float, **kwargs: Any
    ) -> None:
        metrics = self.metrics
        status = "ok" if error is None else "error"
        metrics.child(metrics.runs_in_progress, graph.name).dec()
        metrics.child(metrics.graph_runs, graph.name, status).inc()
        metrics.child(metrics.graph_duration, graph.name, status).observe(duration)

    def on_node_end(self, *, run: RunContext, path: Path, duration: float, **kwargs: Any) -> None:
        key = (run.graph.name, path[0] if len(path) == 1 else node_label(path))
        child = self._ok_durations.get(key)
        if child is None:
            child = self.metrics.child(self.metrics.node_duration, key[0], str(key[1]), "ok")
            self._ok_durations[key] = child
        child.observe(duration)

    def on_node_error(
        self, *, run: RunContext, path: Path, error: BaseException, duration: float, **kwargs: Any
    ) -> None:
        metrics = self.metrics
        graph, node = run.graph.name, node_label(path)
        metrics.child(metrics.node_duration, graph, node, "error").observe(duration)
        metrics.child(metrics.node_errors, graph, node, type(error).__name__).inc()

    def on_retry(self, *, run: RunContext, path: Path, **kwargs: Any) -> None:
        metrics = self.metrics
        metrics.child(metrics.node_retries, run.graph.name, node_label(path)).inc()

    def wsgi_app(self) -> Callable[..., Any]:
        """A WSGI app serving these metrics, to mount in your own server (e.g. under ``/metrics``)."""
        return _prometheus.make_wsgi_app(self.registry)  # type: ignore[no-any-return]

    def asgi_app(self) -> Callable[..., Any]:
        """An ASGI app serving these metrics, e.g. ``app.mount("/metrics", listener.asgi_app())``."""
        return _prometheus.make_asgi_app(self.registry)  # type: ignore[no-any-return]


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint (a daemon thread); :meth:`close` stops it."""

    def __init__(self, server: Any, thread: Any, host: str) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        #: The port actually bound (differs from the one asked for when that was 0).
        self.port: int = server.server_port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def serve_metrics(
    registry: CollectorRegistry | MetricsListener,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    setting: str = "the port argument of serve_metrics()",
    host_setting: str = "the host argument of serve_metrics()",
) -> MetricsServer:
    """Serve ``registry`` (or a listener's registry) at ``http://host:port/metrics`` on a daemon thread.

    ``port=0`` picks a free port (read it back from ``.port``). ``setting`` and ``host_setting``
    name where the port and the host came from, for the errors raised when the port is taken or
    the host cannot be bound (``instrument`` passes the config keys). Binds to loopback by
    default: metrics can reveal graph and node names, so exposing them on all interfaces
    (``host="0.0.0.0"``) is a decision to make explicitly.
    """
    if isinstance(registry, MetricsListener):
        registry = registry.registry
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ObservabilityError(
            f"metrics port must be an int from 0 to 65535, got {port!r} (from {setting})"
        )
    if not isinstance(host, str) or not host.strip():
        raise ObservabilityError(
            f"metrics host must be an address or host name such as '127.0.0.1', got {host!r} "
            f"(from {host_setting}); set it, or leave it unset for loopback"
        )
    try:
        server, thread = _prometheus.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ObservabilityError(
                f"cannot serve metrics on {host}:{port}: the port is already in use. It was chosen by "
                f"{setting}; set it to a free port (or 0 for any), or stop the process using it."
            ) from exc
        raise ObservabilityError(
            f"cannot serve metrics on {host}:{port}: cannot bind the host {host!r} (chosen by "
            f"{host_setting}): {exc.strerror or exc}. Set it to an address of this machine, such as "
            "127.0.0.1."
        ) from exc
    return MetricsServer(server, thread, host)
