"""The OpenTelemetry context, carried from the driver to the workers.

On the driver, :func:`capture` writes the current span's W3C ``traceparent`` into a small dict,
but only when OpenTelemetry is already imported (observability is on) and a span is current, so
it costs nothing otherwise. On the worker, :func:`remote_span` makes that context current and,
when the worker has a real TracerProvider (set one up with the executor's ``worker_setup``),
opens a ``remote <node>`` span as its child: spans the node's code opens there nest under it, in
the same trace as the run.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def capture() -> dict[str, str] | None:
    """The current trace context as a ``traceparent`` carrier, or None when there is nothing to carry."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier or None


@contextmanager
def remote_span(carrier: dict[str, str] | None, name: str, attributes: dict[str, Any]) -> Iterator[None]:
    """Run the block in the driver's trace context, inside a child span when the worker records spans."""
    if not carrier:
        yield
        return
    try:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:  # the worker lacks OpenTelemetry: run untraced rather than fail
        yield
        return
    token = context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        provider = trace.get_tracer_provider()
        if not hasattr(provider, "add_span_processor"):  # the API's no-op/proxy provider: nothing records
            yield
            return
        tracer = provider.get_tracer("kaygraph.ext.distributed")
        attributes = {
            **attributes,
            "kaygraph.worker.pid": os.getpid(),
            "kaygraph.worker.host": socket.gethostname(),
        }
        with tracer.start_as_current_span(name, attributes=attributes):
            yield
    finally:
        context.detach(token)


__all__ = ["capture", "remote_span"]
