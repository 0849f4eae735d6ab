"""``instrument()``: turn tracing, metrics and JSON logs on for every run, from arguments or config.

Standard library only at import time: the drivers load when ``instrument`` first needs them, so
``import kaygraph.ext.observability`` (and ``kaygraph info``) stay cheap and work without the extra.
"""

from __future__ import annotations

import errno
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
    from .tracing import SwitchableSpanProcessor, TracingListener

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
        span_processor: SwitchableSpanProcessor | None = None,
    ) -> None:
        self.tracing = tracing
        self.metrics = metrics
        self.logs = logs
        self.metrics_server = metrics_server
        self._log_handler = log_handler
        self._tracer_provider = tracer_provider
        #: The exporter this setup added to the global provider (switched off by close()).
        self._span_processor = span_processor
        self._closed = False
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
        """Detach the listeners, stop the metrics endpoint, remove the log handler, flush spans and
        switch off the exporter this setup added. Closing twice (or a replaced handle) is a no-op."""
        global _current
        if self._closed:
            return
        self._closed = True
        for listener in self.listeners:
            remove_listener(listener)
        if _current is self:  # closed directly rather than through uninstrument()
            _current = None
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        if self._log_handler is not None:
            from .logs import remove_json_logs

            remove_json_logs(self._log_handler)
            self._log_handler = None
        if self._span_processor is not None:
            self._span_processor.disable()
            self._span_processor = None
        else:
            flush = getattr(self._tracer_provider, "force_flush", None)
            if flush is not None:
                flush()

    def __repr__(self) -> str:
        parts = ", ".join(f"{key}={value!r}" for key, value in self.describe().items())
        return f"<Instrumentation {parts}>"


_lock = threading.Lock()
_current: Instrumentation | None = None


def current() -> Instrumentation | None:
    """The active :class:`Instrumentation`, or None when :func:`instrument` is not in effect."""
    return _current


class _Settings:
    """The ``observability.*`` settings, read from the configuration only when one is needed.

    ``instrument`` asks only for what its caller left as None, so a call that passes everything
    works even when an unrelated configuration value is broken.
    """

    def __init__(self) -> None:
        self._read: dict[str, tuple[Any, str]] = {}

    def get(self, name: str) -> tuple[Any, str]:
        """``(value, source)`` of ``observability.<name>``."""
        entry = self._read.get(name)
        if entry is None:
            try:
                from kaygraph.config import get_config
            except ImportError:
                entry = (DEFAULTS[name], "default")
            else:
                config = get_config()
                key = f"{EXTRA}.{name}"
                entry = (config.get(key), config.source_of(key))
            self._read[name] = entry
        return entry

    def pick(self, argument: Any, name: str) -> Any:
        """``argument``, or the configured value when it is None."""
        return self.get(name)[0] if argument is None else argument


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
    ``.metrics_host``, ``.metrics_port``); arguments you pass are used as given and their keys are
    not read. Spans go to ``tracer_provider``, else to the global provider; with
    ``exporter="console"`` or ``"otlp"`` and no provider given, that exporter is added to the
    global provider (created if none is set, see
    :func:`~kaygraph.ext.observability.tracing.setup_tracing`) and switched off again by
    :func:`uninstrument`. ``service_name`` names the provider KayGraph creates; an existing
    global provider keeps its own (with a warning when you asked for another). Metrics are
    recorded in ``registry`` (default: a private one) and, with ``serve_metrics``, served on
    ``http://metrics_host:metrics_port/metrics``.

    Calling it again replaces the previous setup: the new one is built first and the old one is
    closed only once that succeeded, so a failing call leaves the working setup in place.
    Parts that are off attach nothing, so they cost nothing.
    """
    global _current
    config = _Settings()
    tracing_on = bool(config.pick(tracing, "tracing_enabled"))
    metrics_on = bool(config.pick(metrics, "metrics_enabled"))
    logs_on = bool(config.pick(logs, "json_logs"))
    with _lock:
        previous = _current
        tracing_listener = metrics_listener = log_listener = None
        server = handler = processor = None
        exporter_text = None
        released: MetricsServer | None = None
        try:
            if tracing_on:
                from .tracing import TracingListener, add_exporter

                if tracer_provider is not None:
                    exporter_text = "the tracer_provider passed to instrument()"
                else:
                    chosen_exporter = config.pick(exporter, "exporter")
                    if chosen_exporter == "none":
                        exporter_text = "the global TracerProvider"
                    else:
                        endpoint = config.pick(otlp_endpoint, "otlp_endpoint")
                        name = service_name
                        if name is None:
                            configured, source = config.get("service_name")
                            # The default names only a provider KayGraph creates: no warning
                            # that it cannot rename the user's own provider.
                            name = None if source == "default" else configured
                        tracer_provider, processor = add_exporter(
                            chosen_exporter, endpoint=endpoint, service_name=name
                        )
                        exporter_text = processor.description
                tracing_listener = TracingListener(tracer_provider)
            if logs_on:
                from .logs import JsonLogListener, configure_json_logs

                log_listener = JsonLogListener()
                handler = configure_json_logs(log_stream)
            if metrics_on:
                from .metrics import MetricsListener

                metrics_listener = MetricsListener(registry)
                if serve_metrics:
                    server, released = _start_server(
                        metrics_listener, config, metrics_host, metrics_port, previous
                    )
            active = Instrumentation(
                tracing=tracing_listener,
                metrics=metrics_listener,
                logs=log_listener,
                metrics_server=server,
                log_handler=handler,
                tracer_provider=tracer_provider,
                exporter=exporter_text,
                span_processor=processor,
            )
        except BaseException:
            if server is not None:
                server.close()
            if released is not None and previous is not None:
                _restore_server(previous, released)
            if handler is not None:
                from .logs import remove_json_logs

                remove_json_logs(handler)
            if processor is not None:
                processor.disable()
            raise
        for listener in active.listeners:
            add_listener(listener)
        _current = active
        if previous is not None:
            previous.close()
        return active


def _start_server(
    listener: MetricsListener,
    config: _Settings,
    host_argument: str | None,
    port_argument: int | None,
    previous: Instrumentation | None,
) -> tuple[MetricsServer, MetricsServer | None]:
    """Serve ``listener``'s metrics; returns the server and the previous setup's server if it
    had to be stopped to free the port (the new setup takes its place)."""
    from kaygraph.core.exceptions import ObservabilityError

    from .metrics import serve_metrics as start_server

    if port_argument is None:
        port, source = config.get("metrics_port")
        setting = f"the setting {EXTRA}.metrics_port (source: {source})"
    else:
        port, setting = port_argument, "the metrics_port argument of instrument()"
    if host_argument is None:
        host, source = config.get("metrics_host")
        host_setting = f"the setting {EXTRA}.metrics_host (source: {source})"
    else:
        host, host_setting = host_argument, "the metrics_host argument of instrument()"
    old = previous.metrics_server if previous is not None else None
    try:
        return start_server(listener, host=host, port=port, setting=setting, host_setting=host_setting), None
    except ObservabilityError as exc:
        # The previous setup may hold this very port: free it and try once more.
        cause = exc.__cause__
        in_use = isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE
        if old is None or previous is None or port == 0 or old.port != port or not in_use:
            raise
    old.close()
    previous.metrics_server = None
    return start_server(listener, host=host, port=port, setting=setting, host_setting=host_setting), old


def _restore_server(previous: Instrumentation, released: MetricsServer) -> None:
    """Serve the previous setup's metrics again after a failed replacement freed its port."""
    from .metrics import serve_metrics as start_server

    if previous.metrics is None:
        return
    try:
        previous.metrics_server = start_server(previous.metrics, host=released.host, port=released.port)
    except Exception:  # best effort: the error being raised matters more
        previous.metrics_server = None


def uninstrument() -> None:
    """Undo :func:`instrument`: detach its listeners, stop the metrics server. A no-op when off."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
            _current = None
