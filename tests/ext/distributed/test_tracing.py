"""With observability on, items run on the workers are child spans of the driver's spans: the
trace context travels with each task, and a worker with a TracerProvider (set up through the
executor's ``worker_setup``) records a ``remote <node>`` span under the node's item span."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kaygraph import BatchNode, Graph
from kaygraph.ext.observability import TracingListener

from .conftest import kind_of


class Lengths(BatchNode):
    chunk_size = 1

    def prep(self, shared: dict[str, Any]) -> list[str]:
        return shared["words"]

    def exec(self, word: str) -> int:
        from opentelemetry import trace

        with trace.get_tracer("test").start_as_current_span("inside exec"):
            return len(word)

    def post(self, shared: dict[str, Any], prep_res: Any, lengths: list[int]) -> None:
        shared["lengths"] = lengths


def file_tracing(path: str) -> Any:
    """A ``worker_setup`` that makes the worker record its spans as JSON lines in ``path``."""

    def setup() -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

        class FileExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                with open(path, "a") as out:
                    for span in spans:
                        out.write(
                            json.dumps(
                                {
                                    "name": span.name,
                                    "trace": span.context.trace_id,
                                    "id": span.context.span_id,
                                    "parent": span.parent.span_id if span.parent else None,
                                }
                            )
                            + "\n"
                        )
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
        trace.set_tracer_provider(provider)

    return setup


def test_remote_items_are_child_spans_of_the_drivers_spans(
    executor: Any, make_executor: Any, tmp_path: Path
) -> None:
    worker_spans = tmp_path / f"spans-{kind_of(executor)}.jsonl"
    ex = make_executor(kind_of(executor), worker_setup=file_tracing(str(worker_spans)))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    shared = {"words": ["alpha", "be", "gamma"]}

    Graph(Lengths(), name="words").run(shared, executor=ex, listeners=[TracingListener(provider)])

    assert shared["lengths"] == [5, 2, 5]
    driver = {span.context.span_id: span for span in exporter.get_finished_spans()}
    trace_id = next(span.context.trace_id for span in driver.values() if span.name == "run words")
    items = {span_id for span_id, span in driver.items() if span.name == "item Lengths"}
    remote = [json.loads(line) for line in worker_spans.read_text().splitlines()]
    remotes = [span for span in remote if span["name"] == "remote Lengths"]
    assert len(remotes) == 3 and len(items) == 3
    assert {span["trace"] for span in remote} == {trace_id}  # one trace, driver and workers
    assert {span["parent"] for span in remotes} <= items  # each under an item span of the driver
    inside = [span for span in remote if span["name"] == "inside exec"]
    assert {span["parent"] for span in inside} == {span["id"] for span in remotes}


class Chunked(Lengths):
    """Records which span is current in ``post``: it must be the node's, not an item's."""

    chunk_size = 3

    def post(self, shared: dict[str, Any], prep_res: Any, lengths: list[int]) -> None:
        from opentelemetry import trace

        shared["lengths"] = lengths
        shared["current_in_post"] = trace.get_current_span().get_span_context().span_id


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_chunks_and_post_run_under_the_right_spans(
    make_executor: Any, tmp_path: Path, chunk_size: int
) -> None:
    """Items start at submit and end as they come back, in any order: none of their spans may stay
    current for the rest of the node. A one-item chunk runs under its item's span; a chunk of
    several under the node's, since it belongs to no single item."""
    worker_spans = tmp_path / "spans.jsonl"
    ex = make_executor("process", worker_setup=file_tracing(str(worker_spans)))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    node = Chunked()
    node.chunk_size = chunk_size
    shared: dict[str, Any] = {"words": ["alpha", "be", "gamma", "d", "epsilon", "zeta"]}

    Graph(node, name="words").run(shared, executor=ex, listeners=[TracingListener(provider)])

    assert shared["lengths"] == [5, 2, 5, 1, 7, 4]
    driver = exporter.get_finished_spans()
    node_span = next(span.context.span_id for span in driver if span.name == "node Chunked")
    items = {span.context.span_id for span in driver if span.name == "item Chunked"}
    assert shared["current_in_post"] == node_span
    remotes = [json.loads(line) for line in worker_spans.read_text().splitlines()]
    parents = [span["parent"] for span in remotes if span["name"] == "remote Chunked"]
    assert len(parents) == 6 // chunk_size
    if chunk_size == 1:
        assert len(set(parents)) == 6 and set(parents) == items
    else:
        assert set(parents) == {node_span}
