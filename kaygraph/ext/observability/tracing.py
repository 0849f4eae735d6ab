"""OpenTelemetry tracing: one span per graph run, per node step and per batch item.

:class:`TracingListener` turns the core's lifecycle events into spans. Each span is made current
(attached to the OpenTelemetry context) while its node runs, so:

* node spans nest under the run span, nested graphs under their graph node, batch items under
  their batch node, also across the worker threads of a ``ParallelBatchNode`` and the tasks of
  async parallel batches (the core runs those under a copy of the caller's context);
* spans your own code opens inside ``prep``/``exec``/``post`` (an HTTP client, an LLM SDK's own
  instrumentation) nest under the node that made them;
* a run started inside a web request's span nests under that request.

Span tree of ``Graph(name="rag")`` with nodes ``retrieve >> answer`` where ``answer`` declares
``gen_ai = {"operation.name": "chat", "request.model": "gpt-4o"}``::

    run rag                     kaygraph.graph.name, kaygraph.run.id, kaygraph.graph.mermaid, ...
    ├── node retrieve           kaygraph.node.id, kaygraph.node.class, kaygraph.action, ...
    └── chat gpt-4o             gen_ai.operation.name=chat, gen_ai.request.model=gpt-4o, ...

GenAI declaration: a node (or graph) that is an LLM call, a tool or an agent says so with a
``gen_ai`` mapping, as a class or instance attribute. Keys are OpenTelemetry GenAI attribute names
with or without their ``gen_ai.`` prefix; ``operation.name`` is required::

    class Answer(Node):
        gen_ai = {"operation.name": "chat", "provider.name": "openai", "request.model": "gpt-4o"}

The span is then named and typed the way the GenAI conventions say (``chat gpt-4o``, kind CLIENT;
``execute_tool search``; ``invoke_agent planner``). A node may replace ``self.gen_ai`` during its
step (e.g. in ``post``, with the token usage the API returned): the span gets the new values when
the step ends. Nothing in the node imports OpenTelemetry.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kaygraph.core import BatchGraph, BatchNode, Graph, RunListener, __version__
from kaygraph.core import base_node as _base_node
from kaygraph.core.exceptions import ObservabilityError
from kaygraph.utils.imports import require_package

from ._common import EXTRA, path_text

_trace = require_package("opentelemetry.trace", EXTRA, "KayGraph tracing", package="opentelemetry-api")
_context = require_package("opentelemetry.context", EXTRA, "KayGraph tracing", package="opentelemetry-api")

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from kaygraph.core.base_node import BaseNode
    from kaygraph.core.events import Path, RunContext

__all__ = [
    "GENAI_OPERATIONS",
    "NO_PROVIDER_WARNING",
    "SwitchableSpanProcessor",
    "TracingListener",
    "add_exporter",
    "genai_attributes",
    "setup_tracing",
    "spans_are_dropped",
]

_INTERNAL = _trace.SpanKind.INTERNAL
_CLIENT = _trace.SpanKind.CLIENT
_ERROR = _trace.StatusCode.ERROR
_set_span_in_context = _trace.set_span_in_context
_attach = _context.attach
_detach = _context.detach

#: GenAI operations (``gen_ai.operation.name``) and the attribute that completes their span name.
GENAI_OPERATIONS: dict[str, str | None] = {
    "chat": "gen_ai.request.model",
    "text_completion": "gen_ai.request.model",
    "generate_content": "gen_ai.request.model",
    "embeddings": "gen_ai.request.model",
    "retrieval": "gen_ai.data_source.id",
    "execute_tool": "gen_ai.tool.name",
    "create_agent": "gen_ai.agent.name",
    "invoke_agent": "gen_ai.agent.name",
    "invoke_workflow": "gen_ai.workflow.name",
}
#: Operations that call a model service: their spans are CLIENT spans, as the conventions ask.
_CLIENT_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings", "retrieval"})
#: For these, the node id (or graph name) names the tool, agent or workflow when the node does not.
_NAMED_BY_NODE = frozenset({"gen_ai.tool.name", "gen_ai.agent.name", "gen_ai.workflow.name"})

_KIND_NODE, _KIND_BATCH, _KIND_GRAPH = "node", "batch", "graph"
_kinds: dict[type, str] = {}


def _kind(node_type: type) -> str:
    """Whether a node class is a plain node, a batch node (has items) or a graph (has children)."""
    kind = _kinds.get(node_type)
    if kind is None:
        if issubclass(node_type, Graph):
            kind = _KIND_GRAPH
        elif issubclass(node_type, BatchNode):
            kind = _KIND_BATCH
        else:
            kind = _KIND_NODE
        _kinds[node_type] = kind
    return kind


def genai_attributes(owner: Any, name: str) -> dict[str, Any] | None:
    """The GenAI attributes ``owner`` declares through ``gen_ai``, with full ``gen_ai.`` names.

    ``name`` (the node id or graph name) fills in the tool, agent or workflow name when the
    declaration leaves it out. Returns None for an owner that declares nothing; raises
    ObservabilityError for a declaration that is not a mapping or names no known operation.
    """
    declared = getattr(owner, "gen_ai", None)
    if declared is None:
        return None
    if not isinstance(declared, Mapping):
        raise ObservabilityError(
            f"{type(owner).__name__} {name!r}: gen_ai must be a mapping of GenAI attributes, got "
            f"{declared!r}; write gen_ai = {{'operation.name': 'chat', 'request.model': '...'}}"
        )
    attributes = {
        (key if key.startswith("gen_ai.") else f"gen_ai.{key}"): value for key, value in declared.items()
    }
    operation = attributes.get("gen_ai.operation.name")
    if operation not in GENAI_OPERATIONS:
        raise ObservabilityError(
            f"{type(owner).__name__} {name!r}: gen_ai['operation.name'] is {operation!r}; it must be "
            f"one of {', '.join(GENAI_OPERATIONS)} (the OpenTelemetry GenAI operation names)"
        )
    naming_key = GENAI_OPERATIONS[operation]
    if naming_key in _NAMED_BY_NODE and naming_key not in attributes:
        attributes[naming_key] = name
    return attributes


def _genai_span(attributes: dict[str, Any]) -> tuple[str, Any]:
    """Span name and kind for a GenAI step: ``"{operation} {model/tool/agent}"``, as the conventions ask."""
    operation = attributes["gen_ai.operation.name"]
    naming_key = GENAI_OPERATIONS[operation]
    target = attributes.get(naming_key) if naming_key else None
    name = f"{operation} {target}" if target else operation
    return name, _CLIENT if operation in _CLIENT_OPERATIONS else _INTERNAL


class _OpenSpan:
    """A span this listener started and has not ended, with the context token that made it current."""

    __slots__ = ("genai", "items", "span", "token")

    def __init__(self, span: Span, token: object, genai: Mapping[str, Any] | None = None) -> None:
        self.span = span
        self.token = token
        #: Batch items started under this span (batch nodes and batch graphs only).
        self.items = 0
        #: The ``gen_ai`` mapping seen at start, to notice a node replacing it during its step.
        self.genai = genai


class _RunTrace:
    """Everything one run needs: the run span, the open node and item spans, the path taken."""

    __slots__ = ("items", "lock", "nodes", "path_taken", "recorded_errors", "run", "steps")

    def __init__(self, run: _OpenSpan) -> None:
        self.run = run
        self.nodes: dict[Path, _OpenSpan] = {}
        self.items: dict[tuple[Path, int], _OpenSpan] = {}
        self.path_taken: list[str] = []
        self.steps = 0
        #: ids of exceptions already recorded on an inner span: ancestors only get the status.
        self.recorded_errors: set[int] = set()
        #: Guards the item counters, which parallel batch items update from several threads.
        self.lock = threading.Lock()


NO_PROVIDER_WARNING = (
    "KayGraph tracing is on, but no OpenTelemetry TracerProvider is configured, so every span "
    "is dropped. To see spans: instrument(tracing=True, exporter='console') prints them, "
    "exporter='otlp' sends them to Jaeger/Tempo (observability.exporter in config), or set your "
    "own with opentelemetry.trace.set_tracer_provider(...) before the first run."
)
_warned_no_provider = False


def spans_are_dropped() -> bool:
    """True while the global TracerProvider is OpenTelemetry's placeholder (nobody set one): spans
    made then go nowhere. An explicit no-op provider is a choice and does not count."""
    return isinstance(_trace.get_tracer_provider(), _trace.ProxyTracerProvider)


def warn_if_no_provider() -> None:
    """Warn once per process, at the first traced run, when :func:`spans_are_dropped`.

    Checked at the first run rather than in :func:`instrument`: a provider set after
    ``instrument()`` still receives every span (OpenTelemetry's proxy forwards to it). KayGraph
    does not install a console exporter by itself instead: the global provider can be set only
    once per process, so doing it would lock out the provider the application sets up later.
    """
    global _warned_no_provider
    if _warned_no_provider or not spans_are_dropped():
        return
    _warned_no_provider = True
    warnings.warn(NO_PROVIDER_WARNING, UserWarning, stacklevel=_caller_stacklevel())


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside KayGraph: the user's ``graph.run(...)`` line."""
    import os
    import sys

    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


class TracingListener(RunListener):
    """Emits OpenTelemetry spans for every run it observes (see the module docs for the tree).

    ``tracer_provider``: where spans go; None means the global provider (configure yours, or call
    :func:`setup_tracing`). ``record_topology``: put the graph's Mermaid text and node/edge lists
    on the run span. ``max_path_length``: how many steps of the path taken the run span lists
    (the step count is always exact), so a 10,000-step loop does not make a megabyte attribute.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        record_topology: bool = True,
        max_path_length: int = 200,
    ) -> None:
        if not isinstance(max_path_length, int) or max_path_length < 0:
            raise ObservabilityError(
                f"TracingListener: max_path_length must be an int >= 0, got {max_path_length!r}"
            )
        self.tracer: Tracer = _trace.get_tracer("kaygraph", __version__, tracer_provider=tracer_provider)
        self._global_provider = tracer_provider is None
        self.record_topology = record_topology
        # run.data is shared by every listener of a run: a key of our own per listener.
        self._data_key = f"kaygraph.observability.tracing.{id(self)}"
        self.max_path_length = max_path_length
        # Per graph: (topology version, run span attributes), so the Mermaid text is built once.
        self._graph_cache: weakref.WeakKeyDictionary[Graph, tuple[int, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )

    # -- runs ---------------------------------------------------------------------------------

    def on_run_start(self, *, run: RunContext, graph: Graph, **kwargs: Any) -> None:
        if self._global_provider and not _warned_no_provider:
            warn_if_no_provider()
        attributes = dict(self._graph_attributes(graph))
        # Not cached: a graph may be renamed between runs without any topology change.
        attributes["kaygraph.graph.name"] = graph.name
        attributes["kaygraph.run.id"] = run.run_id
        genai = genai_attributes(graph, graph.name)
        if genai is None:
            name, kind = f"run {graph.name}", _INTERNAL
        else:
            name, kind = _genai_span(genai)
            attributes.update(genai)
        run.data[self._data_key] = _RunTrace(self._start(name, kind, attributes))

    def on_run_end(
        self,
        *,
        run: RunContext,
        action: Any,
        error: BaseException | None,
        **kwargs: Any,
    ) -> None:
        state: _RunTrace | None = run.data.pop(self._data_key, None)
        if state is None:  # on_run_start failed before the run span existed
            return
        span = state.run.span
        try:
            # Steps still open were cut short (e.g. a task cancelled): end them so none leaks.
            for leftover in (*state.items.values(), *state.nodes.values()):
                leftover.span.set_status(_ERROR, "the run ended before this step finished")
                leftover.span.end()
            state.items.clear()
            state.nodes.clear()
            span.set_attribute("kaygraph.run.steps", state.steps)
            span.set_attribute("kaygraph.run.path", state.path_taken)
            if state.steps > len(state.path_taken):
                span.set_attribute("kaygraph.run.path_truncated", True)
            if isinstance(action, str):
                span.set_attribute("kaygraph.action", action)
            if error is not None:
                self._fail(span, error, state)
        finally:
            _close(state.run)

    # -- nodes --------------------------------------------------------------------------------

    def on_node_start(
        self, *, run: RunContext, node: BaseNode, node_id: str, path: Path, **kwargs: Any
    ) -> None:
        state: _RunTrace = run.data[self._data_key]
        state.steps += 1
        top_level = len(path) == 1
        if len(state.path_taken) < self.max_path_length:
            state.path_taken.append(node_id if top_level else path_text(path))
        node_type = type(node)
        kind = _kinds.get(node_type) or _kind(node_type)
        attributes: dict[str, Any] = {"kaygraph.node.id": node_id, "kaygraph.node.class": node_type.__name__}
        if not top_level:
            attributes["kaygraph.node.path"] = path_text(path)
        if kind == _KIND_GRAPH:
            attributes["kaygraph.graph.name"] = node.name  # type: ignore[attr-defined]
        # A batch node's GenAI declaration describes each item (one model call per item).
        genai = None if kind == _KIND_BATCH else getattr(node, "gen_ai", None)
        if genai is not None:
            genai_attrs = genai_attributes(node, node_id)
            assert genai_attrs is not None
            attributes.update(genai_attrs)
            name, span_kind = _genai_span(genai_attrs)
        elif kind == _KIND_GRAPH:
            name, span_kind = f"graph {node_id}", _INTERNAL
        else:
            name, span_kind = f"node {node_id}", _INTERNAL
        span = self.tracer.start_span(name, kind=span_kind, attributes=attributes)
        state.nodes[path] = _OpenSpan(span, _attach(_set_span_in_context(span)), genai)

    def on_node_end(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        path: Path,
        action: Any,
        **kwargs: Any,
    ) -> None:
        state: _RunTrace | None = run.data.get(self._data_key)
        opened = None if state is None else state.nodes.pop(path, None)
        if opened is None:  # already ended by on_run_end (an orphaned async task finishing late)
            return
        span = opened.span
        try:
            if isinstance(action, str):
                span.set_attribute("kaygraph.action", action)
            node_type = type(node)
            kind = _kinds.get(node_type) or _kind(node_type)
            if kind == _KIND_NODE:
                attempts = getattr(node, "cur_retry", 0) + 1
                if attempts > 1:
                    span.set_attribute("kaygraph.node.attempts", attempts)
                genai = getattr(node, "gen_ai", None)
                if genai is not opened.genai:
                    self._update_genai(span, node)
            elif opened.items or isinstance(node, (BatchNode, BatchGraph)):
                span.set_attribute("kaygraph.batch.size", opened.items)
        finally:
            _close(opened)

    def on_node_error(
        self,
        *,
        run: RunContext,
        path: Path,
        error: BaseException,
        attempts: int | None,
        **kwargs: Any,
    ) -> None:
        state: _RunTrace | None = run.data.get(self._data_key)
        opened = None if state is None else state.nodes.pop(path, None)
        if state is None or opened is None:
            return
        try:
            if attempts is not None:
                opened.span.set_attribute("kaygraph.node.attempts", attempts)
            if opened.items:
                opened.span.set_attribute("kaygraph.batch.size", opened.items)
            self._fail(opened.span, error, state)
        finally:
            _close(opened)

    def on_retry(
        self, *, attempt: int, error: BaseException, wait: float, **kwargs: Any
    ) -> None:
        # The retrying node's (or batch item's) span is current: this hook runs where exec ran.
        _trace.get_current_span().add_event(
            "kaygraph.retry",
            {
                "kaygraph.retry.attempt": attempt,
                "kaygraph.retry.wait": float(wait),
                "exception.type": type(error).__qualname__,
                "exception.message": str(error),
            },
        )

    # -- batch items --------------------------------------------------------------------------

    def on_batch_item_start(
        self, *, run: RunContext, node: BaseNode, node_id: str, path: Path, index: int, **kwargs: Any
    ) -> None:
        state: _RunTrace = run.data[self._data_key]
        parent = state.nodes.get(path)
        if parent is not None:
            with state.lock:
                parent.items += 1
        attributes: dict[str, Any] = {"kaygraph.node.id": node_id, "kaygraph.batch.index": index}
        genai = None if _kind(type(node)) == _KIND_GRAPH else genai_attributes(node, node_id)
        if genai is None:
            name, span_kind = f"item {node_id}", _INTERNAL
        else:
            attributes.update(genai)
            name, span_kind = _genai_span(genai)
        state.items[(path, index)] = self._start(name, span_kind, attributes)

    def on_batch_item_end(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        path: Path,
        index: int,
        error: BaseException | None,
        **kwargs: Any,
    ) -> None:
        state: _RunTrace | None = run.data.get(self._data_key)
        opened = None if state is None else state.items.pop((path, index), None)
        if state is None or opened is None:
            return
        span = opened.span
        try:
            if _kind(type(node)) == _KIND_BATCH:
                attempts = getattr(node, "cur_retry", 0) + 1
                if attempts > 1:
                    span.set_attribute("kaygraph.node.attempts", attempts)
            if error is not None:
                self._fail(span, error, state)
        finally:
            _close(opened)

    # -- helpers ------------------------------------------------------------------------------

    def _start(
        self, name: str, kind: Any, attributes: dict[str, Any], genai: Mapping[str, Any] | None = None
    ) -> _OpenSpan:
        """Start a span as a child of the current one and make it current."""
        span = self.tracer.start_span(name, kind=kind, attributes=attributes)
        return _OpenSpan(span, _attach(_set_span_in_context(span)), genai)

    @staticmethod
    def _update_genai(span: Span, node: BaseNode) -> None:
        """Put a ``gen_ai`` declaration the node replaced during its step on its span.

        A bad replacement does not fail the run, whose work is done: it is recorded on the span
        as an error (status and exception event) saying what to fix.
        """
        try:
            attributes = genai_attributes(node, node.node_id)
        except ObservabilityError as exc:
            span.set_status(_ERROR, f"invalid gen_ai declaration set during the step: {exc}")
            span.record_exception(exc)
            return
        if attributes:
            span.set_attributes(attributes)

    @staticmethod
    def _fail(span: Span, error: BaseException, state: _RunTrace) -> None:
        """Error status on every span the error crossed; the exception itself on the innermost."""
        span.set_status(_ERROR, f"{type(error).__name__}: {error}")
        if id(error) not in state.recorded_errors:
            state.recorded_errors.add(id(error))
            span.record_exception(error)

    def _graph_attributes(self, graph: Graph) -> dict[str, Any]:
        """Run span attributes that depend only on the graph's structure: its topology, optionally.

        Cached per graph and rebuilt when an edge changes anywhere (the core's topology version).
        The gen_ai declarations of every node are checked here, so a bad one fails the run
        before any node ran rather than midway.
        """
        version = getattr(_base_node, "_topology_version", -1)
        cached = self._graph_cache.get(graph)
        if cached is not None and cached[0] == version and version != -1:
            return cached[1]
        attributes: dict[str, Any] = {}
        nodes: list[str] = []
        edges: list[str] = []
        for path, node in graph.walk():
            nodes.append(path_text(path))
            genai_attributes(node, node.node_id)
            if isinstance(node, Graph):
                edges.extend(
                    f"{path_text((*path, source))} -{action}-> {path_text((*path, target))}"
                    for source, action, target in node.edges()
                )
        edges[:0] = [f"{source} -{action}-> {target}" for source, action, target in graph.edges()]
        if self.record_topology:
            attributes["kaygraph.graph.nodes"] = nodes
            attributes["kaygraph.graph.edges"] = edges
            attributes["kaygraph.graph.mermaid"] = graph.to_mermaid()
        self._graph_cache[graph] = (version, attributes)
        return attributes


def _close(opened: _OpenSpan) -> None:
    """Restore the context that was current before ``opened`` was made current, then end it.

    Ends the span even when restoring fails, so no span is ever left unexported. Each listener
    holds its own token, so two TracingListeners on one run each restore exactly the context
    they replaced (the core delivers end events in reverse attach order).
    """
    try:
        _detach(opened.token)
    finally:
        opened.span.end()


# -- setup for people without an OpenTelemetry configuration ---------------------------------

_EXPORTERS = ("console", "otlp")
_DEFAULT_SERVICE_NAME = "kaygraph"
_installed: dict[str, tuple[TracerProvider, SwitchableSpanProcessor]] = {}
_installed_lock = threading.Lock()


class SwitchableSpanProcessor:
    """A span processor that can be switched off: KayGraph's exporters hang on one of these.

    The OpenTelemetry SDK cannot remove a processor from a TracerProvider, so what
    :func:`setup_tracing` and :func:`~kaygraph.ext.observability.instrument` add is wrapped in
    this switch; :meth:`disable` (called by ``uninstrument()``) flushes and shuts the exporter
    down, and spans ended afterwards are no longer exported by it.
    """

    def __init__(self, processor: Any, description: str) -> None:
        self.processor = processor
        #: What the wrapped processor exports to, e.g. ``"console"`` or ``"otlp -> http://..."``.
        self.description = description
        self.enabled = True
        self._lock = threading.Lock()

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.enabled:
            self.processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Any) -> None:
        if self.enabled:
            on_ending = getattr(self.processor, "_on_ending", None)
            if on_ending is not None:
                on_ending(span)

    def on_end(self, span: Any) -> None:
        if self.enabled:
            self.processor.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if not self.enabled:
            return True
        return bool(self.processor.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.disable()

    def disable(self) -> None:
        """Stop exporting through this processor: flush what it holds, then shut it down. Idempotent."""
        with self._lock:
            if not self.enabled:
                return
            self.enabled = False
        try:
            self.processor.force_flush()
        finally:
            self.processor.shutdown()

    def __repr__(self) -> str:
        return f"<SwitchableSpanProcessor {self.description} {'on' if self.enabled else 'off'}>"


def setup_tracing(
    exporter: str = "console",
    *,
    endpoint: str | None = None,
    service_name: str | None = None,
) -> TracerProvider:
    """Install a global TracerProvider that exports spans to the console or to an OTLP endpoint.

    For people with no OpenTelemetry setup of their own; if you already configured a provider,
    skip this (the listener uses yours). ``endpoint`` is the OTLP/HTTP traces URL (default: the
    SDK's, ``http://localhost:4318/v1/traces``, or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``).
    ``service_name`` (default ``"kaygraph"``) names the ``service.name`` resource of the provider
    this creates. Calling it again with the same arguments returns the same provider and adds
    nothing. If a global SDK provider already exists, the exporter is added to it rather than
    replacing it (OpenTelemetry allows setting the global provider only once per process); its
    resource cannot change then, so an explicit ``service_name`` that differs from the provider's
    own gives a warning and is not applied.
    """
    key = f"{exporter}|{endpoint}|{service_name}"
    with _installed_lock:
        installed = _installed.get(key)
        if installed is not None and installed[1].enabled:
            return installed[0]
        provider, processor = add_exporter(exporter, endpoint=endpoint, service_name=service_name)
        _installed[key] = (provider, processor)
        return provider


def add_exporter(
    exporter: str,
    *,
    endpoint: str | None = None,
    service_name: str | None = None,
) -> tuple[TracerProvider, SwitchableSpanProcessor]:
    """Add a console or OTLP exporter to the global SDK TracerProvider (created if none is set).

    Returns the provider and the :class:`SwitchableSpanProcessor` holding the exporter: call its
    ``disable()`` to stop exporting. Every call adds a new exporter; :func:`setup_tracing` is the
    idempotent front end. ``service_name`` as in :func:`setup_tracing`.
    """
    if exporter not in _EXPORTERS:
        raise ObservabilityError(
            f"setup_tracing: unknown exporter {exporter!r}; use one of {', '.join(_EXPORTERS)} "
            "(or configure your own TracerProvider and skip setup_tracing)"
        )
    sdk_trace = require_package(
        "opentelemetry.sdk.trace", EXTRA, "setup_tracing", package="opentelemetry-sdk"
    )
    sdk_export = require_package(
        "opentelemetry.sdk.trace.export", EXTRA, "setup_tracing", package="opentelemetry-sdk"
    )
    sdk_resources = require_package(
        "opentelemetry.sdk.resources", EXTRA, "setup_tracing", package="opentelemetry-sdk"
    )
    provider = _trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider) and not isinstance(
        provider, _trace.ProxyTracerProvider
    ):
        raise ObservabilityError(
            f"setup_tracing: a global TracerProvider of type {type(provider).__name__} is already "
            "set and cannot take an exporter; add your exporter to it yourself, or pass "
            "tracer_provider= to TracingListener"
        )
    if exporter == "console":
        processor = sdk_export.SimpleSpanProcessor(sdk_export.ConsoleSpanExporter())
        description = "console"
    else:
        otlp = require_package(
            "opentelemetry.exporter.otlp.proto.http.trace_exporter",
            EXTRA,
            "setup_tracing(exporter='otlp')",
            package="opentelemetry-exporter-otlp-proto-http",
        )
        processor = sdk_export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=endpoint))
        description = "otlp" + (f" -> {endpoint}" if endpoint else "")
    if isinstance(provider, sdk_trace.TracerProvider):
        existing = provider.resource.attributes.get("service.name")
        if service_name is not None and service_name != existing:
            warnings.warn(
                f"setup_tracing: service_name {service_name!r} is not applied: the global "
                f"TracerProvider already exists with service.name {existing!r}, and OpenTelemetry "
                "cannot change a provider's resource. Spans keep service.name "
                f"{existing!r}; set OTEL_SERVICE_NAME (or the resource of your own provider) "
                "before the provider is created to choose it.",
                UserWarning,
                stacklevel=3,
            )
    else:
        provider = sdk_trace.TracerProvider(
            resource=sdk_resources.Resource.create(
                {"service.name": service_name or _DEFAULT_SERVICE_NAME}
            )
        )
        _trace.set_tracer_provider(provider)
    switch = SwitchableSpanProcessor(processor, description)
    provider.add_span_processor(switch)
    return provider, switch
