"""instrument()/uninstrument(): global listeners from arguments or config, and the extension's
status lines for `kaygraph info`."""

from __future__ import annotations

import urllib.request

import pytest

from kaygraph import Graph, Node, get_listeners
from kaygraph.core.exceptions import ObservabilityError
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
    """Each part the config turns on an argument turns off, and the other way round; without the
    arguments the same config is obeyed (so the test fails if the config were simply ignored)."""
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_TRACING_ENABLED", "true")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_ENABLED", "false")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_PORT", "1")  # privileged: serving would fail

    from_config = instrument(tracer_provider=spans.provider)
    assert from_config.tracing is not None and from_config.metrics is None
    Graph(start=Node(), name="configured").run({})
    assert spans.one("run configured")

    overridden = instrument(tracing=False, metrics=True, metrics_port=0, tracer_provider=spans.provider)
    assert overridden.tracing is None and overridden.metrics is not None
    assert overridden.metrics_server is not None and overridden.metrics_server.port != 1
    Graph(start=Node(), name="overridden").run({})
    assert spans.named("run overridden") == []


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


# -- regressions ---------------------------------------------------------------------------------


def test_uninstrument_switches_off_the_exporter_it_added_and_reinstrument_does_not_duplicate() -> None:
    import subprocess
    import sys

    # A fresh interpreter: the global TracerProvider can be set once per process.
    code = (
        "import warnings\n"
        "from opentelemetry import trace\n"
        "from kaygraph import Graph, Node\n"
        "from kaygraph.ext.observability import instrument, uninstrument\n"
        "instrument(tracing=True, exporter='console', service_name='svc-a')\n"
        "uninstrument()\n"
        "with trace.get_tracer('app').start_as_current_span('app-after-uninstrument'):\n"
        "    pass\n"
        "instrument(tracing=True, exporter='console')\n"
        "instrument(tracing=True, exporter='console')\n"
        "Graph(start=Node(node_id='only'), name='once').run({})\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    instrument(tracing=True, exporter='console', service_name='svc-b')\n"
        "print('WARNINGS', [str(w.message) for w in caught])\n"
        "uninstrument()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "app-after-uninstrument" not in result.stdout
    assert result.stdout.count('"name": "run once"') == 1
    assert result.stdout.count('"name": "node only"') == 1
    assert '"service.name": "svc-a"' in result.stdout
    warnings_line = next(line for line in result.stdout.splitlines() if line.startswith("WARNINGS"))
    assert "service_name 'svc-b' is not applied" in warnings_line
    assert "service.name 'svc-a'" in warnings_line


def test_switchable_processor_stops_forwarding_once_disabled() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kaygraph.ext.observability.tracing import SwitchableSpanProcessor

    exporter = InMemorySpanExporter()
    switch = SwitchableSpanProcessor(SimpleSpanProcessor(exporter), "memory")
    provider = TracerProvider()
    provider.add_span_processor(switch)
    tracer = provider.get_tracer("test")
    tracer.start_span("before").end()
    switch.disable()
    switch.disable()  # idempotent
    tracer.start_span("after").end()

    assert [span.name for span in exporter.get_finished_spans()] == ["before"]
    assert repr(switch) == "<SwitchableSpanProcessor memory off>"


def test_arguments_given_are_not_read_from_a_broken_config(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaygraph.config import _reset_for_tests
    from kaygraph.core.exceptions import ConfigurationError

    monkeypatch.setenv("KAYGRAPH_UI_PORT", "abc")  # unrelated and broken
    _reset_for_tests()
    try:
        active = instrument(
            tracing=True, metrics=True, logs=False, tracer_provider=spans.provider, serve_metrics=False
        )
        assert active.tracing is not None and active.metrics is not None
        uninstrument()
        with pytest.raises(ConfigurationError, match="KAYGRAPH_UI_PORT"):
            instrument(tracing=True, metrics=False)  # logs left to the config, which is broken
    finally:
        monkeypatch.delenv("KAYGRAPH_UI_PORT")
        _reset_for_tests()


def test_a_failing_reinstrument_keeps_the_working_setup() -> None:
    import socket

    working = instrument(metrics=True, metrics_port=0)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        with pytest.raises(ObservabilityError, match=f"127.0.0.1:{port}: the port is already in use"):
            instrument(metrics=True, metrics_port=port)
    finally:
        busy.close()

    assert current() is working
    assert get_listeners() == working.listeners
    assert working.metrics_server is not None
    with urllib.request.urlopen(working.metrics_server.url) as response:
        assert response.status == 200


def test_reinstrument_on_the_same_port_takes_it_over_and_a_stale_close_is_harmless() -> None:
    first = instrument(metrics=True, metrics_port=0)
    assert first.metrics_server is not None
    port = first.metrics_server.port
    second = instrument(metrics=True, metrics_port=port)

    assert second.metrics_server is not None and second.metrics_server.port == port
    first.close()  # already replaced: must not touch the new setup
    assert current() is second
    assert get_listeners() == second.listeners
    with urllib.request.urlopen(second.metrics_server.url) as response:
        assert response.status == 200


def test_a_bad_metrics_host_names_the_host_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ObservabilityError, match="metrics_host argument of instrument"):
        instrument(metrics=True, metrics_port=0, metrics_host="")
    bad_host = r"cannot bind the host 'no-such-host\.invalid'.*metrics_host"
    with pytest.raises(ObservabilityError, match=bad_host):
        instrument(metrics=True, metrics_port=0, metrics_host="no-such-host.invalid")
    assert current() is None
