"""JSON logs: one object per line, carrying run, node, trace and span ids so logs join traces."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from kaygraph import Graph, Node, ParallelBatchNode
from kaygraph.ext.observability import JsonFormatter, JsonLogListener, instrument

from .conftest import Spans


class Retrying(Node):
    def exec(self, prep_res: Any) -> None:
        if self.cur_retry == 0:
            raise TimeoutError("slow")


class Fails(Node):
    def exec(self, prep_res: Any) -> None:
        raise RuntimeError("no luck")


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_log_lines_carry_the_ids_of_the_span_they_describe(spans: Spans) -> None:
    stream = io.StringIO()
    instrument(tracing=True, logs=True, tracer_provider=spans.provider, log_stream=stream)
    first = Retrying(max_retries=2)
    first >> Node(node_id="second")
    Graph(start=first, name="joined").run({}, run_id="run-42")

    records = lines(stream)
    events = [record["event"] for record in records]
    assert events == ["run_start", "retry", "node_end", "node_end", "run_end"]
    run_span = spans.one("run joined")
    node_spans = {span.attributes["kaygraph.node.id"]: span for span in spans.named("node Retrying")}
    node_spans["second"] = spans.one("node second")
    trace_id = format(run_span.context.trace_id, "032x")
    for record in records:
        assert record["trace_id"] == trace_id
        assert record["run_id"] == "run-42"
        assert record["graph"] == "joined"
        assert record["logger"] == "kaygraph.events"
    # Start and end lines of the run carry the run span; node lines their node's span, on both
    # the retry (mid-step) and the end event.
    run_span_id = format(run_span.context.span_id, "016x")
    assert records[0]["span_id"] == records[-1]["span_id"] == run_span_id
    retrying_span_id = format(node_spans["Retrying"].context.span_id, "016x")
    assert records[1]["span_id"] == records[2]["span_id"] == retrying_span_id
    assert records[3]["span_id"] == format(node_spans["second"].context.span_id, "016x")
    assert records[1]["level"] == "WARNING"
    assert records[1]["attempt"] == 1
    assert records[2]["node_id"] == "Retrying"
    assert records[2]["duration_ms"] >= 0


def test_failures_are_logged_as_errors_with_their_type() -> None:
    stream = io.StringIO()
    instrument(logs=True, tracing=False, log_stream=stream)
    with pytest.raises(RuntimeError):
        Graph(start=Fails(), name="failing").run({})

    records = lines(stream)
    assert [(record["event"], record["level"]) for record in records] == [
        ("run_start", "INFO"),
        ("node_error", "ERROR"),
        ("run_end", "ERROR"),
    ]
    assert records[1]["error_type"] == "RuntimeError"
    assert records[1]["error"] == "no luck"
    assert "trace_id" not in records[1]  # no tracing, no ids


def test_debug_level_adds_node_starts_and_batch_items(spans: Spans) -> None:
    class Items(ParallelBatchNode):
        def prep(self, shared: dict[str, Any]) -> list[int]:
            return [1, 2]

    logger = logging.getLogger("test.kaygraph.debug")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        Graph(start=Items()).run({}, listeners=[JsonLogListener(logger)])
    finally:
        logger.removeHandler(handler)

    events = sorted(record["event"] for record in lines(stream))
    assert events == sorted(
        ["run_start", "node_start", "batch_item_start", "batch_item_start", "batch_item_end",
         "batch_item_end", "node_end", "run_end"]
    )


def test_the_formatter_adds_the_current_span_to_any_record(spans: Spans) -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.user = "ada"
    with spans.provider.get_tracer("test").start_as_current_span("work") as span:
        payload = json.loads(JsonFormatter().format(record))

    assert payload["message"] == "hello world"
    assert payload["user"] == "ada"
    assert payload["span_id"] == format(span.get_span_context().span_id, "016x")


def test_json_logs_keep_the_users_level_and_restore_propagation() -> None:
    from kaygraph.ext.observability import uninstrument

    events = logging.getLogger("kaygraph.events")
    events.setLevel(logging.DEBUG)  # the user's own choice, made before instrument()
    try:
        stream = io.StringIO()
        instrument(logs=True, log_stream=stream)
        assert events.level == logging.DEBUG
        assert events.propagate is False
        Graph(start=Node(node_id="only"), name="levels").run({})
        assert "node_start" in [record["event"] for record in lines(stream)]  # DEBUG lines kept

        instrument(logs=True, log_stream=io.StringIO())  # replacing the setup keeps it too
        uninstrument()
        assert events.level == logging.DEBUG
        assert events.propagate is True
        assert events.handlers == []
    finally:
        events.setLevel(logging.NOTSET)


def test_json_logs_restore_an_unset_level_and_leave_the_users_handler() -> None:
    from kaygraph.ext.observability import uninstrument

    events = logging.getLogger("kaygraph.events")
    mine = logging.StreamHandler(io.StringIO())
    events.addHandler(mine)
    try:
        instrument(logs=True, log_stream=io.StringIO())
        assert events.level == logging.INFO
        uninstrument()
        assert events.level == logging.NOTSET
        assert events.propagate is True
        assert events.handlers == [mine]
    finally:
        events.removeHandler(mine)
