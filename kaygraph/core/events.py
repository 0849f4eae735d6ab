"""Lifecycle events: how extensions (persistence, tracing, metrics, the dashboard) observe a run.

A listener is any object with some of the ``on_*`` methods of :class:`RunListener`. Every hook
takes keyword arguments only and must accept ``**kwargs``, so the engine can add fields without
breaking listeners. Listeners are attached globally (:func:`add_listener`) or for one run
(``graph.run(shared, listeners=[...])``) and are checked when attached, never mid-run. A
listener attached both ways is called once. Start events reach listeners in attach order, end
events in reverse order.

Hooks run synchronously in the thread or task of the node they describe, so context variables
(e.g. the OpenTelemetry current span) nest correctly. An exception raised by a hook fails the run:
a checkpoint that cannot be written must not be silently skipped.
"""

from __future__ import annotations

import os
import time
from itertools import count

from .exceptions import ListenerError, add_note
from .log import info_possible

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from .cancel import CancelToken

    # Annotation names only: this module sits below the node and graph modules, so it imports
    # neither (not even for type checking); listeners receive kaygraph.BaseNode / kaygraph.Graph.
    BaseNode = Any
    Graph = Any

    #: A position in a graph: node ids, with batch indices for the levels inside a batch graph.
    Path = tuple[str | int, ...]


class RunListener:
    """Base class for lifecycle listeners; override the hooks you need, all are optional.

    ``path`` is the position of a node from the top graph down, e.g. ``("ingest", 3, "embed")``
    for node ``embed`` of the nested batch graph ``ingest`` while it handles item 3.
    """

    def on_run_start(self, *, run: RunContext, graph: Graph, shared: Any, **kwargs: Any) -> None:
        """A top-level run begins."""

    def on_run_end(
        self,
        *,
        run: RunContext,
        graph: Graph,
        shared: Any,
        action: Any,
        error: BaseException | None,
        duration: float,
        **kwargs: Any,
    ) -> None:
        """A top-level run ended, with its last action or the error that stopped it."""

    def on_node_start(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        shared: Any,
        params: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        """A node (or nested graph) is about to run ``prep``."""

    def on_node_end(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        shared: Any,
        params: dict[str, Any],
        action: Any,
        duration: float,
        next_node_id: str | None,
        **kwargs: Any,
    ) -> None:
        """A node completed: ``post`` returned ``action``; ``next_node_id`` is None when its level ends."""

    def on_node_error(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        error: BaseException,
        attempts: int | None,
        duration: float,
        **kwargs: Any,
    ) -> None:
        """A node failed; the error propagates after the listeners have seen it. Also sent for
        ``BaseException``s such as ``asyncio.CancelledError`` and ``KeyboardInterrupt``."""

    def on_retry(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        attempt: int,
        error: BaseException,
        wait: float,
        **kwargs: Any,
    ) -> None:
        """Attempt number ``attempt`` (1-based) of ``exec`` failed and will be retried after ``wait`` s."""

    def on_batch_item_start(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        index: int,
        item: Any,
        size: int | None,
        **kwargs: Any,
    ) -> None:
        """A batch node starts item ``index`` of ``size`` (for a batch graph: one parameter set;
        ``size`` is None when its ``prep`` returned an iterable without a length)."""

    def on_batch_item_end(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        index: int,
        result: Any,
        error: BaseException | None,
        duration: float,
        **kwargs: Any,
    ) -> None:
        """A batch item finished (``error`` is None) or failed for good."""


#: The hooks a listener may have, in :class:`RunListener`'s order.
EVENTS = tuple(name for name in vars(RunListener) if name.startswith("on_"))

_END_EVENTS = frozenset({"on_run_end", "on_node_end", "on_node_error", "on_batch_item_end"})

_global_listeners: tuple[Any, ...] = ()


_validated_types: set[type] = set()


def validate_listener(listener: Any) -> None:
    """Reject a listener whose hooks are misspelled or cannot take new keyword arguments (cached per
    class unless hooks live on the instance, so passing listeners to every ``run()`` stays cheap)."""
    instance_hooks = any(name.startswith("on_") for name in getattr(listener, "__dict__", ()))
    if not instance_hooks and type(listener) in _validated_types:
        return
    import inspect  # only when attaching: keeps `import kaygraph` light

    hooks = [name for name in dir(listener) if name.startswith("on_")]
    unknown = [name for name in hooks if name not in EVENTS and callable(getattr(listener, name))]
    if unknown:
        import difflib

        name = unknown[0]
        close = difflib.get_close_matches(name, EVENTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ListenerError(
            f"listener {type(listener).__name__} has unknown hook {name!r}.{hint} "
            f"Known hooks: {', '.join(EVENTS)}."
        )
    known = [name for name in hooks if name in EVENTS]
    if not known:
        raise ListenerError(
            f"{listener!r} is not a listener: it has none of the hooks {', '.join(EVENTS)}. "
            "Subclass kaygraph.RunListener and override the hooks you need."
        )
    for name in known:
        hook = getattr(listener, name)
        if not callable(hook):
            raise ListenerError(f"listener {type(listener).__name__}.{name} is not callable")
        params = inspect.signature(hook).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            raise ListenerError(
                f"listener hook {type(listener).__name__}.{name} must accept **kwargs so that new event "
                f"fields do not break it: def {name}(self, *, run, ..., **kwargs)"
            )
    if not instance_hooks:
        _validated_types.add(type(listener))


def add_listener(listener: Any) -> None:
    """Attach ``listener`` to every run started from now on, in every thread."""
    global _global_listeners
    validate_listener(listener)
    if listener not in _global_listeners:
        _global_listeners = (*_global_listeners, listener)


def remove_listener(listener: Any) -> None:
    """Detach a listener added with :func:`add_listener`; unknown listeners are ignored."""
    global _global_listeners
    _global_listeners = tuple(other for other in _global_listeners if other is not listener)


def get_listeners() -> tuple[Any, ...]:
    """The listeners attached globally, in the order they were added."""
    return _global_listeners


def _overrides(listener: Any, event: str) -> bool:
    """Whether ``listener`` really handles ``event`` (not RunListener's empty default)."""
    hook = getattr(listener, event, None)
    return hook is not None and getattr(hook, "__func__", hook) is not vars(RunListener)[event]


class ResumePoint:
    """Where a run restarts: the seam the persistence extension uses to resume a run.

    ``path`` names the next node at each graph level (see :data:`Path`); a final ``None`` means
    that level had already finished, with ``last_action`` as its result. ``completed_items`` maps
    batch indices to results already obtained by the node at the end of the path (or, for an
    async parallel batch graph at the end of the path, the indices of the parameter sets done).
    ``params``, when given, replace the top graph's params for the resumed run (the ones the
    checkpointed run had). Graph-level ``prep`` runs again for every graph the path enters, so it
    must be idempotent (a ``BatchGraph`` needs it to list its parameter sets again).
    """

    __slots__ = ("_depth", "completed_items", "last_action", "params", "path")

    def __init__(
        self,
        path: Sequence[str | int | None],
        *,
        last_action: Any = None,
        completed_items: dict[int, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        if not path:
            raise ValueError("a ResumePoint needs a non-empty path")
        self.path = tuple(path)
        self.last_action = last_action
        self.completed_items = completed_items
        self.params = params
        self._depth = 0

    def restarted(self) -> ResumePoint:
        """A copy positioned at the start of its path, so one ResumePoint can serve several runs."""
        return ResumePoint(
            self.path, last_action=self.last_action, completed_items=self.completed_items, params=self.params
        )

    def take(self) -> tuple[str | int | None, bool]:
        """Consume the next path element; returns it and whether it was the last one."""
        element = self.path[self._depth]
        self._depth += 1
        return element, self._depth == len(self.path)

    def __repr__(self) -> str:
        return f"ResumePoint(path={self.path!r}, last_action={self.last_action!r})"


class RunContext:
    """One run of a graph: its id, its listeners, its cancel token and executor, and scratch space
    for extensions. Every event it delivers carries ``run_id`` and ``seq`` (1, 2, 3... per run,
    strictly increasing across threads, tasks, nested and batch graphs).

    Created by ``Graph.run``/``run_async`` and shared by every node of that run only, so two runs
    of one graph never see each other's state.
    """

    __slots__ = (
        "_hooks",
        "_run_id",
        "cancel",
        "data",
        "executor",
        "graph",
        "listeners",
        "log_steps",
        "next_seq",
        "plain",
        "resume",
        "started_at",
    )

    def __init__(
        self,
        graph: Graph,
        listeners: Iterable[Any] = (),
        *,
        run_id: str | None = None,
        resume: ResumePoint | None = None,
        cancel: CancelToken | None = None,
        executor: Any = None,
    ) -> None:
        self.graph = graph
        self.listeners: tuple[Any, ...] = tuple(listeners)
        self.resume = resume
        #: The run's :class:`~kaygraph.core.cancel.CancelToken`, or None.
        self.cancel = cancel
        #: The executor given to ``run(executor=)``, or None (see :mod:`kaygraph.core.executor`).
        self.executor = executor
        #: True when the run has no listener, token or executor: nodes take their fastest path.
        self.plain = not self.listeners and cancel is None and executor is None
        #: The next event's sequence number: ``ctx.next_seq()``, atomic across threads.
        self.next_seq = count(1).__next__
        #: Whether steps write INFO log records: checked once per run, so by default none is formatted.
        self.log_steps = info_possible()
        self.started_at = time.time()
        #: Free space for listeners to keep per-run state (keyed by their own name).
        self.data: dict[str, Any] = {}
        self._run_id = run_id
        # End events go to listeners in reverse order, so listeners that nest state (a tracer
        # making its span current) unwind like nested `with` blocks.
        self._hooks: dict[str, tuple[Callable[..., Any], ...]] = {}
        for event in EVENTS if self.listeners else ():
            ordered = self.listeners[::-1] if event in _END_EVENTS else self.listeners
            self._hooks[event] = tuple(
                getattr(listener, event) for listener in ordered if _overrides(listener, event)
            )

    @property
    def run_id(self) -> str:
        """The id given to ``run(..., run_id=)``, or a random one made on first use."""
        if self._run_id is None:
            self._run_id = os.urandom(16).hex()
        return self._run_id

    def wants(self, event: str) -> bool:
        """Whether any listener of this run handles ``event``."""
        return bool(self._hooks.get(event))

    def emit_for(self, event: str, node: Any, /, **fields: Any) -> None:
        """:meth:`emit` an event about ``node``, with its ``node_id`` and ``path``."""
        if self._hooks.get(event):
            self.emit(event, node=node, node_id=node.node_id, path=node._kg_path, **fields)

    def emit(self, event: str, /, **fields: Any) -> None:
        """Call every listener's ``event`` hook with ``run=self``, ``run_id``, ``seq`` and ``fields``.

        Every hook is called even if one raises; the first error is raised afterwards, so one
        failing listener cannot leave the others half-informed. But an end event reporting an
        ``error`` is sent while that error propagates, and a listener failing then must not
        replace it: its failure becomes a note on the error instead.
        """
        hooks = self._hooks.get(event)
        if not hooks:
            return
        run_id = self._run_id or self.run_id
        seq = self.next_seq()
        error = fields.get("error") if event in _END_EVENTS else None
        first: BaseException | None = None
        for hook in hooks:  # keywords, not one more dict: this runs for every step of a listened run
            try:
                hook(run=self, run_id=run_id, seq=seq, **fields)
            except BaseException as exc:
                if error is not None and isinstance(exc, Exception):
                    owner = getattr(hook, "__self__", hook)
                    add_note(error, f"KayGraph: listener {type(owner).__name__}.{event} also failed: "
                             f"{type(exc).__name__}: {exc}")
                elif first is None:
                    first = exc
        if first is not None:
            raise first
