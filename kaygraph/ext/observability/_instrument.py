"""``instrument()``: turn tracing, metrics and JSON logs on for every run, from arguments or config.

Standard library only at import time: the drivers load when ``instrument`` first needs them, so
``import kaygraph.ext.observability`` (and ``kaygraph info``) stay cheap and work without the extra.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, TextIO

from kaygraph.core import RunListener
from kaygraph.core.events import add_listener, remove_listener

from ._common import EXTRA

if TYPE_CHECKING:
    import logging

    from opentelemetry.trace import TracerProvider
    from prometheus_client import CollectorRegistry

    from .logs import JsonLogListener
    from .metrics import MetricsListener, MetricsServer
    from .tracing import TracingListener

__all__ = ["Instrumentation", "ObservabilityListener", "current", "instrument", "settings", "uninstrument"]

#: The keys ``instrument`` reads, with the defaults used when ``kaygraph.config`` is unavailable.
DEFAULTS: dict[str, Any] = {
    "tracing_enabled": False,
    "metrics_enabled": False,
    "metrics_host": "127.0.0.1",
    "metrics_port": 9090,
    "service_name": "kaygraph",
    "exporter": "none",
    "otlp_endpoint": None,
    "json_logs": False,
}


def settings() -> dict[str, tuple[Any, str]]:
    """Every ``observability.*`` setting as ``(value, where it came from)``.

    Read from :func:`kaygraph.config.get_config`; when the config module is missing, the
    defaults above, with the source ``"default"``.
    """
    try:
        from kaygraph.config import get_config
    except ImportError:
        return {name: (value, "default") for name, value in DEFAULTS.items()}
    config = get_config()
    result: dict[str, tuple[Any, str]] = {}
    for name in DEFAULTS:
        key = f"{EXTRA}.{name}"
        result[name] = (config.get(key), config.source_of(key))
    return result


class ObservabilityListener(RunListener):
    """Several listeners run as one, nested like context managers.

    Start events go to ``parts`` in order and end events in reverse, so with
    ``(tracing, metrics, logs)`` a log line is written while the node's span is current on both
    its start and its end event, and carries that span's ids. Each part's hooks are looked up
    once, here; the ``on_*`` methods are generated below the class, one per event.
    """

    _STARTS = ("on_run_start", "on_node_start", "on_batch_item_start", "on_retry")
    _ENDS = ("on_run_end", "on_node_end", "on_node_error", "on_batch_item_end")

    def __init__(self, *parts: Any) -> None:
        self.parts = parts
        ordered = {event: parts for event in self._STARTS}
        ordered.update({event: parts[::-1] for event in self._ENDS})
        self._hooks = {
            event: tuple(
                getattr(part, event)
                for part in listeners
                if getattr(type(part), event, None) is not getattr(RunListener, event)
            )
            for event, listeners in ordered.items()
        }

    def __repr__(self) -> str:
        return f"ObservabilityListener({', '.join(type(part).__name__ for part in self.parts)})"


def _forward(event: str) -> Any:
    """The hook ``event`` of ObservabilityListener: call the parts' hooks in their order."""

    def hook(self: ObservabilityListener, **kwargs: Any) -> None:
        for part_hook in self._hooks[event]:
            part_hook(**kwargs)

    hook.__name__ = event
    hook.__qualname__ = f"ObservabilityListener.{event}"
    hook.__doc__ = f"Forward ``{event}`` to every part that handles it."
    return hook


for _event in (*ObservabilityListener._STARTS, *ObservabilityListener._ENDS):
    setattr(ObservabilityListener, _event, _forward(_event))
del _event


class Instrumentation:
    """What :func:`instrument` turned on; :func:`uninstrument` (or :meth:`close`) turns it off.

    ``tracing``, ``metrics`` and ``logs`` are the listeners (None when off); ``metrics_server``
    is the running ``/metrics`` endpoint, if one was started.
    """

    def __init__(
        self,
        *,
        tracing: TracingListener | None,
        metrics: MetricsListener | None,
        logs: JsonLogListener | None,
        metrics_server: MetricsServer | None,
        log_handler: logging.Handler | None,
        tracer_provider: Any,
        exporter: str | None = None,
    ) -> None:
        self.tracing = tracing
        self.metrics = metrics
        self.logs = logs
        self.metrics_server = metrics_server
        self._log_handler = log_handler
        self._tracer_provider = tracer_provider
        #: How spans leave the process, for :meth:`describe` (None when tracing is off).
        self.exporter = exporter
        parts = [part for part in (tracing, metrics, logs) if part is not None]
        # Without logs the order of the parts does not matter: attach them directly and save
        # the composite's extra call per event.
        self.listeners: tuple[Any, ...] = (
            (ObservabilityListener(*parts),) if logs is not None and len(parts) > 1 else tuple(parts)
        )

    def describe(self) -> dict[str, str]:
        """Status lines for ``kaygraph info``: whether each part is on and where metrics are served."""
        if self.metrics is None:
            metrics = "off"
        elif self.metrics_server is not None:
            metrics = self.metrics_server.url
        else:
            metrics = "on (not served: mount listener.wsgi_app() or asgi_app())"
        lines = {"tracing": "on" if self.tracing is not None else "off"}
        if self.exporter is not None:
            lines["exporter"] = self.exporter
        lines["metrics"] = metrics
        lines["json_logs"] = "on" if self.logs is not None else "off"
        return lines

    def close(self) -> None:
        """Detach the listeners, stop the metrics endpoint, remove the log handler, flush spans."""
        for listener in self.listeners:
            remove_listener(listener)
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        if self._log_handler is not None:
            from .logs import remove_json_logs

            remove_json_logs(self._log_handler)
            self._log_handler = None
        flush = getattr(self._tracer_provider, "force_flush", None)
        if flush is not None:
            flush()
        global _current
        if _current is self:  # closed directly rather than through uninstrument()
            _current = None

    def __repr__(self) -> str:
        parts = ", ".join(f"{key}={value!r}" for key, value in self.describe().items())
        return f"<Instrumentation {parts}>"


_lock = threading.Lock()
_current: Instrumentation | None = None


def current() -> Instrumentation | None:
    """The active :class:`Instrumentation`, or None when :func:`instrument` is not in effect."""
    return _current


def instrument(
    tracing: bool | None = None,
    metrics: bool | None = None,
    logs: bool | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    exporter: str | None = None,
    otlp_endpoint: str | None = None,
    service_name: str | None = None,
    registry: CollectorRegistry | None = None,
    metrics_host: str | None = None,
    metrics_port: int | None = None,
    serve_metrics: bool = True,
    log_stream: TextIO | None = None,
) -> Instrumentation:
    """Observe every graph run in this process: spans, Prometheus metrics, JSON logs.

    Each argument left as None is read from the configuration (``observability.tracing_enabled``,
    ``.metrics_enabled``, ``.json_logs``, ``.exporter``, ``.otlp_endpoint``, ``.service_name``,
    ``.metrics_host``, ``.metrics_port``). Spans go to ``tracer_provider``, else to the global
    provider; with ``exporter="console"`` or ``"otlp"`` and no provider given, one is set up by
    :func:`~kaygraph.ext.observability.tracing.setup_tracing`. Metrics are recorded in
    ``registry`` (default: a private one) and, with ``serve_metrics``, served on
    ``http://metrics_host:metrics_port/metrics``. Calling it again replaces the previous setup.
    Parts that are off attach nothing, so they cost nothing.
    """
    global _current
    config = settings()

    def pick(argument: Any, name: str) -> Any:
        return config[name][0] if argument is None else argument

    tracing_on = bool(pick(tracing, "tracing_enabled"))
    metrics_on = bool(pick(metrics, "metrics_enabled"))
    logs_on = bool(pick(logs, "json_logs"))
    with _lock:
        if _current is not None:
            _current.close()
            _current = None
        tracing_listener = metrics_listener = log_listener = None
        server = handler = None
        exporter_text = None
        try:
            if tracing_on:
                from .tracing import TracingListener, setup_tracing

                chosen_exporter = pick(exporter, "exporter")
                endpoint = pick(otlp_endpoint, "otlp_endpoint")
                if tracer_provider is not None:
                    exporter_text = "the tracer_provider passed to instrument()"
                elif chosen_exporter == "none":
                    exporter_text = "the global TracerProvider"
                else:
                    tracer_provider = setup_tracing(
                        chosen_exporter, endpoint=endpoint, service_name=pick(service_name, "service_name")
                    )
                    exporter_text = chosen_exporter + (f" -> {endpoint}" if endpoint else "")
                tracing_listener = TracingListener(tracer_provider)
            if metrics_on:
                from .metrics import MetricsListener
                from .metrics import serve_metrics as start_server

                metrics_listener = MetricsListener(registry)
                if serve_metrics:
                    if metrics_port is None:
                        port, source = config["metrics_port"]
                        setting = f"the setting {EXTRA}.metrics_port (source: {source})"
                    else:
                        port, setting = metrics_port, "the metrics_port argument of instrument()"
                    server = start_server(
                        metrics_listener, host=pick(metrics_host, "metrics_host"), port=port, setting=setting
                    )
            if logs_on:
                from .logs import JsonLogListener, configure_json_logs

                log_listener = JsonLogListener()
                handler = configure_json_logs(log_stream)
            active = Instrumentation(
                tracing=tracing_listener,
                metrics=metrics_listener,
                logs=log_listener,
                metrics_server=server,
                log_handler=handler,
                tracer_provider=tracer_provider,
                exporter=exporter_text,
            )
        except BaseException:
            if server is not None:
                server.close()
            if handler is not None:
                from .logs import remove_json_logs

                remove_json_logs(handler)
            raise
        for listener in active.listeners:
            add_listener(listener)
        _current = active
        return active


def uninstrument() -> None:
    """Undo :func:`instrument`: detach its listeners, stop the metrics server. A no-op when off."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None
