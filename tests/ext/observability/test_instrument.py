"""instrument()/uninstrument(): global listeners from arguments or config, and the extension's
status lines for `kaygraph info`."""

from __future__ import annotations

import pytest

from kaygraph import Graph, Node, get_listeners
from kaygraph.ext.observability import (
    MetricsListener,
    ObservabilityListener,
    TracingListener,
    current,
    describe,
    instrument,
    uninstrument,
)

from .conftest import Spans


def test_with_everything_off_nothing_is_attached() -> None:
    instrumentation = instrument()  # config defaults: all off

    assert instrumentation.listeners == ()
    assert get_listeners() == ()
    assert describe() == {"tracing": "off", "metrics": "off", "json_logs": "off"}


def test_instrument_observes_every_run_until_uninstrument(spans: Spans) -> None:
    instrumentation = instrument(
        tracing=True, metrics=True, tracer_provider=spans.provider, serve_metrics=False
    )
    # Without logs the parts are attached directly: no composite call per event.
    assert [type(listener) for listener in get_listeners()] == [TracingListener, MetricsListener]
    assert instrumentation.describe() == {
        "tracing": "on",
        "exporter": "the tracer_provider passed to instrument()",
        "metrics": "on (not served: mount listener.wsgi_app() or asgi_app())",
        "json_logs": "off",
    }

    Graph(start=Node(), name="watched").run({})
    uninstrument()
    Graph(start=Node(), name="unwatched").run({})

    assert [span.name for span in spans.all() if span.parent is None] == ["run watched"]
    assert get_listeners() == ()
    assert current() is None


def test_instrument_again_replaces_the_previous_setup(spans: Spans) -> None:
    first = instrument(metrics=True, metrics_port=0)
    assert first.metrics_server is not None
    second = instrument(tracing=True, tracer_provider=spans.provider)

    assert first.metrics_server is None  # closed
    assert get_listeners() == second.listeners
    assert current() is second


def test_logs_with_tracing_attach_one_ordered_listener(spans: Spans) -> None:
    import io

    instrumentation = instrument(
        tracing=True, logs=True, tracer_provider=spans.provider, log_stream=io.StringIO()
    )
    (listener,) = get_listeners()
    assert isinstance(listener, ObservabilityListener)
    assert listener.parts == (instrumentation.tracing, instrumentation.logs)


def test_config_turns_parts_on(spans: Spans, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_TRACING_ENABLED", "true")
    instrument(tracer_provider=spans.provider)
    Graph(start=Node(), name="configured").run({})

    assert spans.one("run configured")
    assert describe()["tracing"] == "on"


def test_arguments_override_the_config(spans: Spans, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_TRACING_ENABLED", "true")
    instrumentation = instrument(tracing=False)
    assert instrumentation.tracing is None


def test_describe_reports_the_configuration_before_instrument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_ENABLED", "true")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_PORT", "9464")

    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_TRACING_ENABLED", "true")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_EXPORTER", "otlp")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_OTLP_ENDPOINT", "http://collector:4318/v1/traces")

    pending = "enabled in config; starts when instrument() runs"
    assert describe() == {
        "tracing": pending,
        "exporter": "otlp -> http://collector:4318/v1/traces",
        "metrics": f"{pending}, serving http://127.0.0.1:9464/metrics",
        "json_logs": "off",
    }


def test_the_extension_describes_itself() -> None:
    from kaygraph.ext.base import registry

    extension = registry.peek("observability")
    assert extension is not None
    lines = extension.describe()
    assert lines == {"tracing": "off", "metrics": "off", "json_logs": "off"}
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in lines.items())


def test_initializing_the_extension_instruments_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from kaygraph.ext.base import registry

    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_ENABLED", "true")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_PORT", "0")
    extension = registry.peek("observability")
    assert extension is not None
    extension.initialize()
    try:
        active = current()
        assert active is not None and active.metrics_server is not None
        assert extension.describe()["metrics"] == active.metrics_server.url
    finally:
        extension.shutdown()
    assert current() is None


def test_the_composite_listener_forwards_every_core_event_in_nesting_order() -> None:
    from kaygraph import RunListener
    from kaygraph.core.events import EVENTS

    calls: list[str] = []

    class Part(RunListener):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_node_start(self, **kwargs: object) -> None:
            calls.append(f"{self.name} start")

        def on_node_end(self, **kwargs: object) -> None:
            calls.append(f"{self.name} end")

    composite = ObservabilityListener(Part("outer"), Part("inner"))
    assert all(
        getattr(ObservabilityListener, event) is not getattr(RunListener, event) for event in EVENTS
    )
    Graph(start=Node()).run({}, listeners=[composite])
    assert calls == ["outer start", "inner start", "inner end", "outer end"]


def test_closing_the_handle_is_the_same_as_uninstrument() -> None:
    instrumentation = instrument(metrics=True, metrics_port=0)
    instrumentation.close()

    assert current() is None
    assert get_listeners() == ()
    assert describe()["metrics"] == "off"
    uninstrument()  # still fine afterwards
