"""Observability overhead: the 10,000-step two-node loop bare, traced, metered, and both.

    .venv/bin/python bench/observability_overhead.py [--rounds 7] [--processor simple|batch]

Prints microseconds per node step (medians over rounds), the overhead over the bare loop and the
ratio to it; goal: tracing + metrics add under 15 us per node step. Modes alternate within each
round so machine noise hits them alike. One extra mode traces into OpenTelemetry's no-op
TracerProvider: the listener's own work (plus the core's event dispatch) without the SDK, which
splits the tracing cost into KayGraph's share and the OpenTelemetry SDK's; another uses an SDK
provider whose sampler drops the run (what a run costs when a ratio sampler leaves it out).

Spans go through the OpenTelemetry SDK's ``SimpleSpanProcessor`` (default: export runs inline,
so its cost is in the number) or ``BatchSpanProcessor`` (export on a background thread) to an
exporter that counts and drops them, so the number is KayGraph's listener plus the SDK's span
machinery, not a network or a growing list. Metrics go to a private prometheus_client registry.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import NoOpTracerProvider

from kaygraph import Graph, Node
from kaygraph.ext.observability import MetricsListener, TracingListener

LOOP_STEPS = 10_000


class Ping(Node):
    def prep(self, shared: dict[str, int]) -> int:
        return shared["count"]

    def exec(self, count: int) -> int:
        return count + 1

    def post(self, shared: dict[str, int], prep_res: int, exec_res: int) -> str:
        shared["count"] = exec_res
        return "pong" if exec_res < LOOP_STEPS else "done"


class Pong(Ping):
    def post(self, shared: dict[str, int], prep_res: int, exec_res: int) -> str:
        shared["count"] = exec_res
        return "ping"


def loop_graph() -> Graph:
    ping, pong = Ping(), Pong()
    ping - "pong" >> pong
    pong - "ping" >> ping
    return Graph(start=ping, name="loop")


class DroppingExporter(SpanExporter):
    """Counts spans and throws them away: the cheapest real exporter."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def make_provider(processor: str) -> tuple[TracerProvider, DroppingExporter]:
    exporter = DroppingExporter()
    provider = TracerProvider()
    if processor == "batch":
        provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=2 * LOOP_STEPS + 16))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def measure(graph: Graph, listeners: list[Any]) -> float:
    """Microseconds per node step of one 10,000-step run."""
    shared = {"count": 0}
    started = time.perf_counter()
    graph.run(shared, listeners=listeners)
    elapsed = time.perf_counter() - started
    steps = shared["count"]  # one increment per node step
    assert steps >= LOOP_STEPS, shared
    return elapsed / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="measurements per mode (median taken)")
    parser.add_argument("--processor", choices=("simple", "batch"), default="simple")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the loop ends on an action without an edge, by design

    provider, exporter = make_provider(args.processor)
    tracing, metrics = TracingListener(provider), MetricsListener()
    noop_tracing = TracingListener(NoOpTracerProvider())
    unsampled_tracing = TracingListener(TracerProvider(sampler=ALWAYS_OFF))
    modes: dict[str, Callable[[], list[Any]]] = {
        "bare (no listener)": list,
        "tracing": lambda: [tracing],
        "metrics": lambda: [metrics],
        "tracing + metrics": lambda: [tracing, metrics],
        "tracing, no-op SDK": lambda: [noop_tracing],
        "tracing, not sampled": lambda: [unsampled_tracing],
    }
    graph = loop_graph()
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for listeners in modes.values():  # warm-up: imports, caches, first spans
        measure(graph, listeners())
    for _ in range(args.rounds):
        for mode, listeners in modes.items():
            samples[mode].append(measure(graph, listeners()))
            provider.force_flush()
    provider.shutdown()

    bare = statistics.median(samples["bare (no listener)"])
    print(
        f"10,000-step two-node loop, median of {args.rounds} rounds, spans via "
        f"{args.processor.capitalize()}SpanProcessor to a dropping exporter ({exporter.exported} spans)\n"
    )
    print(f"{'mode':<22}{'us/step':>10}{'overhead us':>14}{'x bare':>9}")
    for mode, values in samples.items():
        median = statistics.median(values)
        print(f"{mode:<22}{median:>10.2f}{median - bare:>14.2f}{median / bare:>9.1f}")
    both = statistics.median(samples["tracing + metrics"]) - bare
    ours = statistics.median(samples["tracing, no-op SDK"]) - bare
    sdk = statistics.median(samples["tracing"]) - statistics.median(samples["tracing, no-op SDK"])
    verdict = "met" if both < 15 else "NOT met"
    print(f"\ngoal: tracing + metrics add < 15 us per node step: {both:.2f} us ({verdict})")
    print(
        f"of tracing's cost, KayGraph's listener and event dispatch: {ours:.2f} us; "
        f"the OpenTelemetry SDK: {sdk:.2f} us"
    )


if __name__ == "__main__":
    main()
