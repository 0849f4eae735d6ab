"""Fixtures for the observability tests: an in-memory span exporter and span-tree helpers.

Tests pass their TracerProvider to the listener explicitly: OpenTelemetry lets a process set the
global provider only once, so tests that need the global one run in a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kaygraph.ext.observability import TracingListener, uninstrument


class Spans:
    """The spans one test produced, with helpers to look at them as a tree."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        """Spans called ``name``, in batch-index order when they are items, else start order."""
        found = [span for span in self.all() if span.name == name]
        return sorted(found, key=_order)

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        names = [span.name for span in self.all()]
        assert len(found) == 1, f"expected one span {name!r}, got {len(found)}: {names}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        parent_id = parent.context.span_id
        found = [span for span in self.all() if span.parent is not None and span.parent.span_id == parent_id]
        return sorted(found, key=_order)

    def tree(self) -> list[tuple[str, list[Any]]]:
        """Every root span as ``(name, [children...])``, recursively; the shape of the whole trace."""
        roots = sorted((span for span in self.all() if span.parent is None), key=_order)
        return [self._subtree(root) for root in roots]

    def _subtree(self, span: ReadableSpan) -> tuple[str, list[Any]]:
        return (span.name, [self._subtree(child) for child in self.children(span)])


def _order(span: ReadableSpan) -> tuple[int, int]:
    index = span.attributes.get("kaygraph.batch.index") if span.attributes else None
    return (int(index) if index is not None else -1, span.start_time or 0)


@pytest.fixture
def spans() -> Spans:
    return Spans()


@pytest.fixture
def tracing(spans: Spans) -> TracingListener:
    return TracingListener(spans.provider)


@pytest.fixture(autouse=True)
def _no_instrumentation_left() -> Iterator[None]:
    """A test that calls instrument() never leaves listeners or a metrics server behind."""
    yield
    uninstrument()
