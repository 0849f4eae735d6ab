"""MetricsListener and the /metrics endpoint, scraped over real HTTP on loopback."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kaygraph import BatchGraph, Graph, Node
from kaygraph.core.exceptions import ObservabilityError
from kaygraph.ext.observability import (
    DEFAULT_BUCKETS,
    MetricsListener,
    current,
    instrument,
    serve_metrics,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return parse(response.read().decode())


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


class Ask(Node):
    def exec(self, prep_res: Any) -> str:
        if self.cur_retry == 0:
            raise TimeoutError("rate limited")
        return "answer"

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        return "check"


class Check(Node):
    def prep(self, shared: dict[str, Any]) -> bool:
        return bool(shared.get("fail"))

    def exec(self, fail: bool) -> None:
        if fail:
            raise ValueError("bad answer")


def qa_graph() -> Graph:
    ask = Ask(max_retries=2)
    ask - "check" >> Check()
    return Graph(start=ask, name="qa")


@pytest.fixture
def blocked_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        yield blocker.getsockname()[1]


def test_metrics_are_served_over_http_and_count_every_run() -> None:
    instrumentation = instrument(metrics=True, tracing=False, metrics_port=0)
    server = instrumentation.metrics_server
    assert server is not None
    assert server.host == "127.0.0.1"
    assert server.url == f"http://127.0.0.1:{server.port}/metrics"
    graph = qa_graph()

    graph.run({})
    graph.run({})
    with pytest.raises(ValueError):
        graph.run({"fail": True})
    samples = scrape(server.url)

    def value(name: str, **label_values: str) -> float:
        return samples[(name, labels(graph="qa", **label_values))]

    assert value("kaygraph_graph_runs_total", status="ok") == 2
    assert value("kaygraph_graph_runs_total", status="error") == 1
    assert value("kaygraph_graph_duration_seconds_count", status="ok") == 2
    assert value("kaygraph_runs_in_progress") == 0
    assert value("kaygraph_node_duration_seconds_count", node="Ask", status="ok") == 3
    assert value("kaygraph_node_duration_seconds_count", node="Check", status="ok") == 2
    assert value("kaygraph_node_duration_seconds_count", node="Check", status="error") == 1
    assert value("kaygraph_node_retries_total", node="Ask") == 3
    assert value("kaygraph_node_errors_total", node="Check", error_type="ValueError") == 1
    # Buckets reach from milliseconds to minutes, for LLM calls.
    bounds = {
        dict(key[1])["le"]
        for key in samples
        if key[0] == "kaygraph_node_duration_seconds_bucket" and dict(key[1])["node"] == "Ask"
    }
    assert {"0.001", "60.0", "600.0", "+Inf"} <= bounds
    assert len(bounds) == len(DEFAULT_BUCKETS) + 1


def test_labels_stay_bounded_for_batch_graphs() -> None:
    class PerItem(BatchGraph):
        def prep(self, shared: dict[str, Any]) -> list[dict[str, int]]:
            return [{"item": index} for index in range(25)]

    listener = MetricsListener()
    Graph(start=PerItem(start=Node(node_id="work")), name="fanout").run({}, listeners=[listener])

    samples = parse(generate_latest(listener.registry).decode())
    node_labels = {
        dict(key[1])["node"] for key in samples if key[0] == "kaygraph_node_duration_seconds_count"
    }
    assert node_labels == {"PerItem", "PerItem/work"}  # 25 items, one label value
    work = labels(graph="fanout", node="PerItem/work", status="ok")
    assert samples[("kaygraph_node_duration_seconds_count", work)] == 25
    assert not any("run_id" in dict(key[1]) for key in samples)


def test_each_listener_gets_a_private_registry_unless_given_one() -> None:
    first, second = MetricsListener(), MetricsListener()
    Graph(start=Node(), name="one").run({}, listeners=[first])

    assert first.registry is not second.registry
    assert b'graph="one"' in generate_latest(first.registry)
    assert b'graph="one"' not in generate_latest(second.registry)


def test_listeners_sharing_a_registry_share_its_metrics() -> None:
    registry = CollectorRegistry()
    first, second = MetricsListener(registry), MetricsListener(registry)
    Graph(start=Node(), name="shared").run({}, listeners=[first])
    Graph(start=Node(), name="shared").run({}, listeners=[second])

    samples = parse(generate_latest(registry).decode())
    assert samples[("kaygraph_graph_runs_total", labels(graph="shared", status="ok"))] == 2
    with pytest.raises(ObservabilityError, match="buckets cannot change"):
        MetricsListener(registry, buckets=(1.0, 2.0))


def test_the_process_wide_registry_can_be_used() -> None:
    listener = MetricsListener(REGISTRY)
    again = MetricsListener(REGISTRY)  # e.g. instrument() called twice: no duplicate registration
    Graph(start=Node(), name="global-registry").run({}, listeners=[listener])
    assert again.metrics is listener.metrics
    assert b'graph="global-registry"' in generate_latest(REGISTRY)


def test_a_port_in_use_names_the_port_and_the_argument(blocked_port: int) -> None:
    with pytest.raises(ObservabilityError) as caught:
        serve_metrics(MetricsListener(), port=blocked_port)
    message = str(caught.value)
    assert f"127.0.0.1:{blocked_port}" in message
    assert "already in use" in message
    assert "the port argument of serve_metrics()" in message

    with pytest.raises(ObservabilityError, match="the metrics_port argument of instrument"):
        instrument(metrics=True, metrics_port=blocked_port)
    assert current() is None  # nothing half-installed


def test_a_port_in_use_names_the_config_key_that_chose_it(
    blocked_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_ENABLED", "true")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_PORT", str(blocked_port))

    with pytest.raises(ObservabilityError) as caught:
        instrument()
    message = str(caught.value)
    assert str(blocked_port) in message
    assert "observability.metrics_port" in message
    assert "KAYGRAPH_OBSERVABILITY_METRICS_PORT" in message


def test_an_invalid_port_is_rejected() -> None:
    with pytest.raises(ObservabilityError, match="must be an int from 0 to 65535, got 70000"):
        serve_metrics(MetricsListener(), port=70000)


def test_closing_the_server_frees_the_port() -> None:
    server = serve_metrics(MetricsListener(), port=0)
    port = server.port
    scrape(server.url)
    server.close()
    again = serve_metrics(MetricsListener(), port=port)
    try:
        assert again.port == port
    finally:
        again.close()


def test_the_wsgi_app_serves_the_same_metrics() -> None:
    listener = MetricsListener()
    Graph(start=Node(), name="mounted").run({}, listeners=[listener])
    status: list[str] = []

    body = b"".join(
        listener.wsgi_app()(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
            lambda code, headers: status.append(code),
        )
    )

    assert status == ["200 OK"]
    assert parse(body.decode())[("kaygraph_graph_runs_total", labels(graph="mounted", status="ok"))] == 1
