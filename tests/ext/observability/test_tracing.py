"""TracingListener: the span tree of sync, async, nested, batch and parallel graphs, with attributes,
error status, retry events, topology and GenAI declarations."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    BatchGraph,
    BatchNode,
    Graph,
    Node,
    ParallelBatchNode,
)
from kaygraph.core.exceptions import ObservabilityError
from kaygraph.ext.observability import TracingListener

from .conftest import Spans

# -- nodes ---------------------------------------------------------------------------------------


class Load(Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared.setdefault("trail", []).append("load")
        return "ready"


class Answer(Node):
    gen_ai = {"operation.name": "chat", "provider.name": "openai", "request.model": "gpt-4o"}

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared.setdefault("trail", []).append("answer")
        # The API's reply is known only now: the span picks the new values up when the step ends.
        self.gen_ai = {**self.gen_ai, "usage.output_tokens": 42}


class Flaky(Node):
    """Fails its first ``failures`` attempts."""

    failures = 1

    def exec(self, prep_res: Any) -> str:
        if self.cur_retry < self.failures:
            raise ConnectionError(f"attempt {self.cur_retry + 1} failed")
        return "ok"


class Broken(Node):
    def exec(self, prep_res: Any) -> None:
        raise ValueError("the model returned nonsense")


class Double(BatchNode):
    def prep(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2, 3]

    def exec(self, item: int) -> int:
        return item * 2

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: list[int]) -> None:
        shared["doubled"] = exec_res


class ThreadedDouble(ParallelBatchNode):
    def prep(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2, 3, 4]

    def exec(self, item: int) -> tuple[int, str]:
        return item * 2, threading.current_thread().name

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: list[tuple[int, str]]) -> None:
        shared["threads"] = {thread for _, thread in exec_res}


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- sync ----------------------------------------------------------------------------------------


def test_sync_graph_makes_a_run_span_with_one_child_per_node(spans: Spans, tracing: TracingListener) -> None:
    load, answer = Load(), Answer()
    load - "ready" >> answer
    graph = Graph(start=load, name="rag")

    graph.run({}, listeners=[tracing], run_id="run-1")

    assert spans.tree() == [("run rag", [("node Load", []), ("chat gpt-4o", [])])]
    run = spans.one("run rag")
    assert run.kind is SpanKind.INTERNAL
    assert _attrs(run)["kaygraph.graph.name"] == "rag"
    assert _attrs(run)["kaygraph.run.id"] == "run-1"
    assert _attrs(run)["kaygraph.run.steps"] == 2
    assert _attrs(run)["kaygraph.run.path"] == ("Load", "Answer")
    assert run.status.status_code is StatusCode.UNSET
    node = _attrs(spans.one("node Load"))
    assert node["kaygraph.node.id"] == "Load"
    assert node["kaygraph.node.class"] == "Load"
    assert node["kaygraph.action"] == "ready"
    assert "kaygraph.node.attempts" not in node  # one attempt


def test_genai_node_follows_the_semantic_conventions(spans: Spans, tracing: TracingListener) -> None:
    Graph(start=Answer(), name="chat").run({}, listeners=[tracing])

    span = spans.one("chat gpt-4o")
    assert span.kind is SpanKind.CLIENT
    attributes = _attrs(span)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.usage.output_tokens"] == 42  # set by post
    assert attributes["kaygraph.node.id"] == "Answer"


def test_tool_and_agent_declarations_are_named_after_the_node(spans: Spans, tracing: TracingListener) -> None:
    class Search(Node):
        gen_ai = {"gen_ai.operation.name": "execute_tool"}

    class Planner(Graph):
        gen_ai = {"operation.name": "invoke_agent", "agent.name": "planner"}

    search = Search(node_id="web_search")
    Planner(start=search, name="plan").run({}, listeners=[tracing])

    assert spans.tree() == [("invoke_agent planner", [("execute_tool web_search", [])])]
    tool = _attrs(spans.one("execute_tool web_search"))
    assert tool["gen_ai.tool.name"] == "web_search"
    assert spans.one("execute_tool web_search").kind is SpanKind.INTERNAL


@pytest.mark.parametrize(
    ("declaration", "problem"),
    [
        ("chat", "must be a mapping"),
        ({"request.model": "gpt-4o"}, "operation.name'] is None"),
        ({"operation.name": "chatting"}, "'chatting'; it must be one of chat"),
    ],
    ids=["not-a-mapping", "no-operation", "unknown-operation"],
)
def test_a_bad_genai_declaration_fails_the_run_before_any_node_runs(
    spans: Spans, tracing: TracingListener, declaration: Any, problem: str
) -> None:
    ran: list[str] = []

    class First(Node):
        def exec(self, prep_res: Any) -> None:
            ran.append("first")

    class Bad(Node):
        gen_ai = declaration

    first = First()
    first >> Bad()
    with pytest.raises(ObservabilityError, match=problem) as caught:
        Graph(start=first).run({}, listeners=[tracing])
    assert "Bad 'Bad'" in str(caught.value)
    assert ran == []


def test_retries_are_span_events_and_attempts_an_attribute(spans: Spans, tracing: TracingListener) -> None:
    Graph(start=Flaky(max_retries=3)).run({}, listeners=[tracing])

    span = spans.one("node Flaky")
    assert [event.name for event in span.events] == ["kaygraph.retry"]
    event = _attrs(span.events[0])
    assert event["kaygraph.retry.attempt"] == 1
    assert event["exception.type"] == "ConnectionError"
    assert event["exception.message"] == "attempt 1 failed"
    assert _attrs(span)["kaygraph.node.attempts"] == 2
    assert span.status.status_code is StatusCode.UNSET


def test_a_failure_sets_error_status_up_the_tree_and_records_the_exception_once(
    spans: Spans, tracing: TracingListener
) -> None:
    broken = Broken(max_retries=2)
    inner = Graph(start=broken, name="inner")
    with pytest.raises(ValueError, match="nonsense"):
        Graph(start=inner, name="outer").run({}, listeners=[tracing])

    assert spans.tree() == [("run outer", [("graph Graph", [("node Broken", [])])])]
    for name in ("run outer", "graph Graph", "node Broken"):
        status = spans.one(name).status
        assert status.status_code is StatusCode.ERROR, name
        assert status.description == "ValueError: the model returned nonsense"
    node = spans.one("node Broken")
    assert [event.name for event in node.events] == ["kaygraph.retry", "exception"]
    assert _attrs(node.events[1])["exception.type"] == "ValueError"
    assert _attrs(node)["kaygraph.node.attempts"] == 2
    # Ancestors carry the status only, not a second copy of the stack trace.
    assert [event.name for event in spans.one("graph Graph").events] == []
    assert [event.name for event in spans.one("run outer").events] == []


# -- topology ------------------------------------------------------------------------------------


def test_the_run_span_carries_the_topology_and_the_path_taken(spans: Spans, tracing: TracingListener) -> None:
    check, fix, done = Load(node_id="check"), Node(node_id="fix"), Node(node_id="done")
    check - "ready" >> fix
    check - "skip" >> done
    fix >> done
    inner = Graph(start=Node(node_id="step"), name="inner")
    done >> inner
    graph = Graph(start=check, name="review")

    graph.run({}, listeners=[tracing])

    run = _attrs(spans.one("run review"))
    assert run["kaygraph.graph.mermaid"] == graph.to_mermaid()
    assert run["kaygraph.graph.nodes"] == ("check", "fix", "done", "Graph", "Graph/step")
    assert run["kaygraph.graph.edges"] == (
        "check -ready-> fix",
        "check -skip-> done",
        "fix -default-> done",
        "done -default-> Graph",
    )
    assert run["kaygraph.run.path"] == ("check", "fix", "done", "Graph", "Graph/step")


def test_the_path_attribute_is_bounded_but_the_step_count_exact(spans: Spans) -> None:
    class Count(Node):
        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
            shared["n"] = shared.get("n", 0) + 1
            return "again" if shared["n"] < 10 else "done"

    count = Count()
    count - "again" >> count
    count - "done" >> Node(node_id="end")
    Graph(start=count).run({}, listeners=[TracingListener(spans.provider, max_path_length=3)])

    run = _attrs(spans.one("run Graph"))
    assert run["kaygraph.run.steps"] == 11
    assert run["kaygraph.run.path"] == ("Count", "Count", "Count")
    assert run["kaygraph.run.path_truncated"] is True
    assert len(spans.named("node Count")) == 10


def test_topology_can_be_left_out(spans: Spans) -> None:
    Graph(start=Load()).run({}, listeners=[TracingListener(spans.provider, record_topology=False)])
    run = _attrs(spans.one("run Graph"))
    assert "kaygraph.graph.mermaid" not in run
    assert run["kaygraph.run.path"] == ("Load",)


def test_the_topology_follows_edges_added_between_runs(spans: Spans, tracing: TracingListener) -> None:
    first = Load(node_id="first")
    graph = Graph(start=first)
    graph.run({}, listeners=[tracing])
    first - "ready" >> Node(node_id="second")
    graph.run({}, listeners=[tracing])

    before, after = spans.named("run Graph")
    assert _attrs(before)["kaygraph.graph.nodes"] == ("first",)
    assert _attrs(after)["kaygraph.graph.nodes"] == ("first", "second")


# -- nesting and context -------------------------------------------------------------------------


def test_nested_graphs_nest_their_spans(spans: Spans, tracing: TracingListener) -> None:
    innermost = Graph(start=Load(), name="innermost")
    middle = Graph(start=innermost, name="middle")
    Graph(start=middle, name="top").run({}, listeners=[tracing])

    assert spans.tree() == [("run top", [("graph Graph", [("graph Graph", [("node Load", [])])])])]
    load = _attrs(spans.one("node Load"))
    assert load["kaygraph.node.path"] == "Graph/Graph/Load"
    graph_names = {_attrs(span)["kaygraph.graph.name"] for span in spans.named("graph Graph")}
    assert graph_names == {"middle", "innermost"}


def test_spans_opened_by_node_code_nest_under_the_node(spans: Spans, tracing: TracingListener) -> None:
    tracer = spans.provider.get_tracer("user-code")

    class CallsAnApi(Node):
        def exec(self, prep_res: Any) -> None:
            with tracer.start_as_current_span("http POST"):
                pass

    with tracer.start_as_current_span("web request"):
        Graph(start=CallsAnApi()).run({}, listeners=[tracing])

    assert spans.tree() == [("web request", [("run Graph", [("node CallsAnApi", [("http POST", [])])])])]
    # Afterwards the caller's context is restored.
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_two_runs_are_two_traces(spans: Spans, tracing: TracingListener) -> None:
    graph = Graph(start=Load())
    graph.run({}, listeners=[tracing])
    graph.run({}, listeners=[tracing])

    runs = spans.named("run Graph")
    assert len({span.context.trace_id for span in runs}) == 2
    for run in runs:
        (node,) = spans.children(run)
        assert node.context.trace_id == run.context.trace_id


# -- batch ---------------------------------------------------------------------------------------


def test_batch_items_nest_under_their_batch_node(spans: Spans, tracing: TracingListener) -> None:
    shared: dict[str, Any] = {}
    Graph(start=Double()).run(shared, listeners=[tracing])

    assert shared["doubled"] == [2, 4, 6]
    assert spans.tree() == [("run Graph", [("node Double", [("item Double", [])] * 3)])]
    node = spans.one("node Double")
    assert _attrs(node)["kaygraph.batch.size"] == 3
    indices = [_attrs(item)["kaygraph.batch.index"] for item in spans.children(node)]
    assert indices == [0, 1, 2]


def test_parallel_batch_items_nest_under_their_node_across_threads(
    spans: Spans, tracing: TracingListener
) -> None:
    shared: dict[str, Any] = {}
    Graph(start=ThreadedDouble(max_workers=4)).run(shared, listeners=[tracing])

    assert all(name.startswith("kaygraph") for name in shared["threads"])  # really on worker threads
    node = spans.one("node ThreadedDouble")
    items = spans.children(node)
    assert [_attrs(item)["kaygraph.batch.index"] for item in items] == [0, 1, 2, 3]
    assert all(item.context.trace_id == node.context.trace_id for item in items)
    assert _attrs(node)["kaygraph.batch.size"] == 4


def test_a_failing_parallel_item_is_an_error_span_under_its_node(
    spans: Spans, tracing: TracingListener
) -> None:
    class FailsOnTwo(ParallelBatchNode):
        def prep(self, shared: dict[str, Any]) -> list[int]:
            return [1, 2]

        def exec(self, item: int) -> int:
            if item == 2:
                raise KeyError("two")
            return item

    with pytest.raises(KeyError):
        Graph(start=FailsOnTwo(max_workers=1)).run({}, listeners=[tracing])

    node = spans.one("node FailsOnTwo")
    assert node.status.status_code is StatusCode.ERROR
    failed = [item for item in spans.children(node) if item.status.status_code is StatusCode.ERROR]
    assert [_attrs(item)["kaygraph.batch.index"] for item in failed] == [1]
    assert [event.name for event in failed[0].events] == ["exception"]
    assert [event.name for event in node.events] == []


def test_genai_batch_nodes_make_one_genai_span_per_item(spans: Spans, tracing: TracingListener) -> None:
    class Embed(ParallelBatchNode):
        gen_ai = {"operation.name": "embeddings", "request.model": "text-embedding-3-small"}

        def prep(self, shared: dict[str, Any]) -> list[str]:
            return ["a", "b"]

    Graph(start=Embed()).run({}, listeners=[tracing])

    assert spans.tree() == [
        ("run Graph", [("node Embed", [("embeddings text-embedding-3-small", [])] * 2)])
    ]
    assert all(span.kind is SpanKind.CLIENT for span in spans.named("embeddings text-embedding-3-small"))


def test_batch_graph_items_hold_the_spans_of_their_pass(spans: Spans, tracing: TracingListener) -> None:
    class PerDocument(BatchGraph):
        def prep(self, shared: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"doc": "a"}, {"doc": "b"}]

    step = Load(node_id="step")
    step - "ready" >> Node(node_id="store")
    Graph(start=PerDocument(start=step, name="docs")).run({}, listeners=[tracing])

    item = ("item PerDocument", [("node step", []), ("node store", [])])
    assert spans.tree() == [("run Graph", [("graph PerDocument", [item, item])])]
    paths = [_attrs(span)["kaygraph.node.path"] for span in spans.named("node step")]
    assert sorted(paths) == ["PerDocument/0/step", "PerDocument/1/step"]


# -- async ---------------------------------------------------------------------------------------


class AsyncFetch(AsyncNode):
    async def exec_async(self, prep_res: Any) -> str:
        await asyncio.sleep(0)
        if self.cur_retry == 0:
            raise TimeoutError("slow upstream")
        return "fetched"

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        return "next"


class AsyncSquare(AsyncParallelBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> list[int]:
        return [1, 2, 3]

    async def exec_async(self, item: int) -> int:
        await asyncio.sleep(0)  # let the items interleave
        return item * item


def test_async_graph_spans_match_the_sync_ones(spans: Spans, tracing: TracingListener) -> None:
    fetch = AsyncFetch(max_retries=2)
    fetch - "next" >> Load()
    graph = AsyncGraph(start=fetch, name="async")

    asyncio.run(graph.run_async({}, listeners=[tracing]))

    assert spans.tree() == [("run async", [("node AsyncFetch", []), ("node Load", [])])]
    fetch_span = spans.one("node AsyncFetch")
    assert [event.name for event in fetch_span.events] == ["kaygraph.retry"]
    assert _attrs(fetch_span)["kaygraph.action"] == "next"
    assert _attrs(fetch_span)["kaygraph.node.attempts"] == 2


def test_async_parallel_batch_items_nest_under_their_node_across_tasks(
    spans: Spans, tracing: TracingListener
) -> None:
    graph = AsyncGraph(start=AsyncSquare())
    asyncio.run(graph.run_async({}, listeners=[tracing]))

    assert spans.tree() == [("run AsyncGraph", [("node AsyncSquare", [("item AsyncSquare", [])] * 3)])]
    assert _attrs(spans.one("node AsyncSquare"))["kaygraph.batch.size"] == 3


def test_async_parallel_batch_graph_passes_each_get_their_own_subtree(
    spans: Spans, tracing: TracingListener
) -> None:
    class Step(AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            await asyncio.sleep(0)  # the passes interleave here

    class PerUser(AsyncParallelBatchGraph):
        async def prep_async(self, shared: dict[str, Any]) -> list[dict[str, Any]]:
            return [{"user": index} for index in range(3)]

    first = Step(node_id="first")
    first >> Step(node_id="second")
    outer = AsyncGraph(start=PerUser(start=first), name="fanout")
    asyncio.run(outer.run_async({}, listeners=[tracing]))

    item = ("item PerUser", [("node first", []), ("node second", [])])
    assert spans.tree() == [("run fanout", [("graph PerUser", [item, item, item])])]
    for pass_span in spans.named("item PerUser"):
        index = _attrs(pass_span)["kaygraph.batch.index"]
        paths = [_attrs(child)["kaygraph.node.path"] for child in spans.children(pass_span)]
        assert paths == [f"PerUser/{index}/first", f"PerUser/{index}/second"]


def test_concurrent_async_runs_keep_separate_traces(spans: Spans, tracing: TracingListener) -> None:
    class Wait(AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            await asyncio.sleep(0)

    graph = AsyncGraph(start=Wait())

    async def main() -> None:
        await asyncio.gather(*(graph.run_async({}, listeners=[tracing]) for _ in range(3)))

    asyncio.run(main())
    runs = spans.named("run AsyncGraph")
    assert len({run.context.trace_id for run in runs}) == 3
    for run in runs:
        assert [child.name for child in spans.children(run)] == ["node Wait"]


def test_concurrent_threaded_runs_keep_separate_traces(spans: Spans, tracing: TracingListener) -> None:
    """Three runs at once, each with its items on worker threads: three traces, each holding exactly
    its own run's node and item spans."""
    graph = Graph(start=ThreadedDouble(max_workers=2))
    errors: list[BaseException] = []
    results: list[dict[str, Any]] = []

    def run_one() -> None:
        shared: dict[str, Any] = {}
        try:
            graph.run(shared, listeners=[tracing])
        except BaseException as exc:  # a failing run must fail the test, not vanish in its thread
            errors.append(exc)
        results.append(shared)

    threads = [threading.Thread(target=run_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == 3 and all(shared["threads"] for shared in results)
    runs = spans.named("run Graph")
    assert len(runs) == 3
    assert len({run.context.trace_id for run in runs}) == 3
    for run in runs:
        (node,) = spans.children(run)
        items = spans.children(node)
        assert len(items) == 4
        assert {span.context.trace_id for span in (node, *items)} == {run.context.trace_id}
        assert all(span.status.is_ok for span in (run, node, *items))
    assert len(spans.all()) == 3 * (1 + 1 + 4)  # no span outside the three trees


# -- setup ---------------------------------------------------------------------------------------


def test_setup_tracing_installs_a_global_console_exporter() -> None:
    # Run in a fresh interpreter: the global TracerProvider can be set once per process.
    code = (
        "from kaygraph import Graph, Node\n"
        "from kaygraph.ext.observability import TracingListener, setup_tracing\n"
        "provider = setup_tracing('console', service_name='svc-under-test')\n"
        "assert setup_tracing('console', service_name='svc-under-test') is provider\n"
        "Graph(start=Node(node_id='only'), name='hello').run({}, listeners=[TracingListener()])\n"
        "provider.force_flush()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert '"name": "run hello"' in result.stdout
    assert '"name": "node only"' in result.stdout
    assert '"service.name": "svc-under-test"' in result.stdout


def test_setup_tracing_rejects_an_unknown_exporter() -> None:
    from kaygraph.ext.observability import setup_tracing

    with pytest.raises(ObservabilityError, match=r"unknown exporter 'jaeger'; use one of console, otlp"):
        setup_tracing("jaeger")


def test_max_path_length_is_validated() -> None:
    with pytest.raises(ObservabilityError, match="max_path_length must be an int >= 0, got -1"):
        TracingListener(max_path_length=-1)


def test_setup_tracing_exports_over_otlp_http() -> None:
    """A real OTLP/HTTP round trip: a loopback server receives the protobuf the exporter posts."""
    import http.server

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    code = (
        "from kaygraph import Graph, Node\n"
        "from kaygraph.ext.observability import TracingListener, setup_tracing\n"
        f"provider = setup_tracing('otlp', endpoint={endpoint!r}, service_name='otlp-test')\n"
        "Graph(start=Node(node_id='only'), name='shipped').run({}, listeners=[TracingListener()])\n"
        "assert provider.force_flush()\n"
    )
    try:
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    finally:
        server.shutdown()
        server.server_close()

    assert [path for path, _ in received] == ["/v1/traces"]
    body = received[0][1]
    assert b"run shipped" in body and b"node only" in body and b"otlp-test" in body


def test_a_cancelled_async_run_still_ends_every_span(spans: Spans, tracing: TracingListener) -> None:
    started = asyncio.Event()

    class Slow(AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            started.set()
            await asyncio.sleep(3600)

    async def main() -> None:
        graph = AsyncGraph(start=Slow(), name="cancelled")
        task = asyncio.create_task(graph.run_async({}, listeners=[tracing]))
        await asyncio.wait_for(started.wait(), 60)  # a guard against hanging, not a timing check
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())

    # The core reports the cancellation (a BaseException) as the node's error, closing its span.
    assert spans.tree() == [("run cancelled", [("node Slow", [])])]
    node = spans.one("node Slow")
    assert node.status.status_code is StatusCode.ERROR
    assert (node.status.description or "").startswith("CancelledError")
    assert spans.one("run cancelled").status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is trace.INVALID_SPAN


# -- regressions ---------------------------------------------------------------------------------


def test_an_invalid_gen_ai_set_during_post_is_recorded_and_the_span_still_ends(
    spans: Spans, tracing: TracingListener
) -> None:
    class Answer(Node):
        gen_ai = {"operation.name": "chat", "request.model": "m"}

        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            self.gen_ai = {"operation.name": "chatt"}  # a typo while adding the token usage

    shared: dict[str, Any] = {}
    Graph(start=Answer(), name="typo").run(shared, listeners=[tracing])  # the run's work is done

    assert spans.tree() == [("run typo", [("chat m", [])])]
    node = spans.one("chat m")
    assert node.status.status_code is StatusCode.ERROR
    assert "invalid gen_ai declaration" in (node.status.description or "")
    assert "'chatt'" in (node.status.description or "")
    assert [event.name for event in node.events] == ["exception"]
    assert spans.one("run typo").status.status_code is StatusCode.UNSET
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_the_run_span_names_the_graph_after_it_was_renamed(spans: Spans, tracing: TracingListener) -> None:
    graph = Graph(start=Node(), name="v1")
    graph.run({}, listeners=[tracing])
    graph.name = "v2"  # no topology change
    graph.run({}, listeners=[tracing])

    assert spans.one("run v1").attributes["kaygraph.graph.name"] == "v1"
    assert spans.one("run v2").attributes["kaygraph.graph.name"] == "v2"


def test_two_tracing_listeners_on_one_run_each_restore_the_context_they_replaced() -> None:
    first, second = Spans(), Spans()
    start = Node(node_id="start")
    start >> Node(node_id="after")
    Graph(start=start, name="twice").run(
        {}, listeners=[TracingListener(first.provider), TracingListener(second.provider)]
    )

    assert trace.get_current_span() is trace.INVALID_SPAN
    for spans in (first, second):
        assert sorted(span.name for span in spans.all()) == ["node after", "node start", "run twice"]
        assert all(span.end_time is not None for span in spans.all())
    # A later run without listeners-of-its-own is not parented under a leftover span.
    later = Spans()
    Graph(start=Node(), name="later").run({}, listeners=[TracingListener(later.provider)])
    assert later.one("run later").parent is None
