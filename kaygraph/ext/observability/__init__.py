"""Observability for KayGraph: OpenTelemetry traces, Prometheus metrics and JSON logs of every run.

Installed with ``pip install 'kaygraph[observability]'``. Everything here is a lifecycle listener,
so nodes need no change. One call turns it on for the whole process::

    from kaygraph.ext.observability import instrument
    instrument(tracing=True, metrics=True)     # arguments left out come from the config

or attach listeners to a single run::

    from kaygraph.ext.observability import MetricsListener, TracingListener
    graph.run(shared, listeners=[TracingListener(), MetricsListener()])

- :class:`TracingListener` (``tracing.py``): a span per run, node step and batch item, with the
  graph's topology on the run span and OpenTelemetry GenAI attributes for nodes that declare
  ``gen_ai = {"operation.name": "chat", ...}``; :func:`setup_tracing` for a console/OTLP exporter.
- :class:`MetricsListener` (``metrics.py``): Prometheus histograms and counters;
  :func:`serve_metrics` serves them on ``http://127.0.0.1:9090/metrics``.
- :class:`JsonLogListener` (``logs.py``): JSON log lines carrying run, node, trace and span ids.

Importing this package loads neither OpenTelemetry nor prometheus_client; they load, or fail with
the install hint, when a listener that needs them is first touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaygraph.core import __version__ as _core_version
from kaygraph.ext.base import PackageExtension, register_extension
from kaygraph.utils.imports import lazy_exports

from ._instrument import Instrumentation, ObservabilityListener, current, instrument, settings, uninstrument

if TYPE_CHECKING:
    from .logs import JsonFormatter, JsonLogListener, configure_json_logs, current_trace_ids
    from .metrics import DEFAULT_BUCKETS, MetricsListener, MetricsServer, serve_metrics
    from .tracing import GENAI_OPERATIONS, TracingListener, setup_tracing

# Served on first touch, so that a missing driver fails only the feature that needs it.
_LAZY: dict[str, str] = {
    "TracingListener": "tracing",
    "setup_tracing": "tracing",
    "GENAI_OPERATIONS": "tracing",
    "MetricsListener": "metrics",
    "MetricsServer": "metrics",
    "serve_metrics": "metrics",
    "DEFAULT_BUCKETS": "metrics",
    "JsonLogListener": "logs",
    "JsonFormatter": "logs",
    "configure_json_logs": "logs",
    "current_trace_ids": "logs",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


def describe() -> dict[str, str]:
    """Whether tracing, metrics and JSON logs are on, and where metrics are served.

    With :func:`instrument` in effect, what it started; otherwise what the configuration would
    start. Cheap and side-effect free: this is what ``kaygraph info`` shows.
    """
    active = current()
    if active is not None:
        return active.describe()
    values = {name: value for name, (value, _source) in settings().items()}
    pending = "enabled in config; starts when instrument() runs"
    lines = {"tracing": pending if values["tracing_enabled"] else "off"}
    if values["tracing_enabled"]:
        lines["exporter"] = _exporter_text(values["exporter"], values["otlp_endpoint"])
    if values["metrics_enabled"]:
        host = values["metrics_host"]
        host = f"[{host}]" if ":" in host else host
        lines["metrics"] = f"{pending}, serving http://{host}:{values['metrics_port']}/metrics"
    else:
        lines["metrics"] = "off"
    lines["json_logs"] = pending if values["json_logs"] else "off"
    return lines


def _exporter_text(exporter: str, endpoint: str | None) -> str:
    if exporter == "otlp":
        return f"otlp -> {endpoint or 'the OTLP default (http://localhost:4318/v1/traces)'}"
    if exporter == "none":
        return "none (spans go to the global TracerProvider you configure)"
    return exporter


# Initializing the extension runs instrument() from the configuration; shutting it down, uninstrument().
register_extension(
    PackageExtension(
        "observability", _core_version, describe=describe, initialize=instrument, shutdown=uninstrument
    )
)

__all__ = [
    "DEFAULT_BUCKETS",
    "GENAI_OPERATIONS",
    "Instrumentation",
    "JsonFormatter",
    "JsonLogListener",
    "MetricsListener",
    "MetricsServer",
    "ObservabilityListener",
    "TracingListener",
    "configure_json_logs",
    "current",
    "current_trace_ids",
    "describe",
    "instrument",
    "serve_metrics",
    "settings",
    "setup_tracing",
    "uninstrument",
]
