"""With the observability extension on, fires are measured: lag, ends by status, missed and skipped."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from kaygraph.ext.observability import instrument, uninstrument
from kaygraph.ext.scheduler import Scheduler, every


def test_fire_metrics_and_span_attributes(graphs, clock) -> None:
    registry = CollectorRegistry()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(tracing=True, metrics=True, registry=registry, serve_metrics=False, tracer_provider=provider)
    try:
        runs = f"memory://{uuid.uuid4().hex}"
        scheduler = Scheduler(f"memory://{uuid.uuid4().hex}", runs=runs, clock=clock, grace=5)
        scheduler.add("report", graphs.ref("counting"), every(minutes=1), catchup="latest")
        clock.advance(60 * 5 + 30)  # four fires missed, the latest runs
        for job in scheduler.tick():
            scheduler.execute(job)
        sample = registry.get_sample_value
        assert sample("kaygraph_scheduler_fires_missed_total", {"schedule": "report"}) == 4
        assert sample("kaygraph_scheduler_fires_total", {"schedule": "report", "status": "succeeded"}) == 1
        assert sample("kaygraph_scheduler_fire_lag_seconds_count", {"schedule": "report"}) == 1
        # The latest missed fire was due 30 s before the scheduler came back (on the fake clock).
        assert sample("kaygraph_scheduler_fire_lag_seconds_sum", {"schedule": "report"}) == 30
        assert scheduler.observer.missed == 4 and list(scheduler.observer.lags) == [30]
    finally:
        uninstrument()
    attributes = [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
    tagged = [a for a in attributes if a.get("kaygraph.schedule") == "report"]
    assert tagged and tagged[0]["kaygraph.fire_id"].startswith("report@")
    assert "kaygraph.fire_lag_seconds" in tagged[0]
