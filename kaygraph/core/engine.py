"""The step engine: every rule of running nodes and graphs, written once and free of I/O.

Each behaviour is a generator that yields the next call, ``(function, args)``, and receives its
result (or has its exception thrown in), as sans-I/O protocol libraries do (h11): :func:`drive`
calls it, :func:`drive_async` also awaits it. Graph stepping, the hot path, yields node copies to
:func:`drive_nodes` / its async twin. So sync and async share the stepping, the node lifecycle,
retries, batch items and parameter sets; a class's ``_run`` / ``_run_async`` is a driver call.
Plain nodes without hooks skip the generators: a node's own fast path pays no bookkeeping.
"""

from __future__ import annotations

import time
from contextvars import ContextVar

from . import log as _log
from .cancel import cancelled_error
from .events import RunContext
from .exceptions import GraphExecutionError, RunCancelled, add_note

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from typing import Any

    from .events import Path

    #: What an engine generator yields: the next function to call and its arguments.
    Call = tuple[Callable[..., Any], tuple[Any, ...]]
    Steps = Generator[Call, Any, Any]

_UNLIMITED = 1 << 62

#: (batch graph, path prefix) while a batch graph runs one parameter set: its nodes' paths then
#: pass through the set's index. A context variable, so concurrent sets (tasks) never mix.
batch_prefix: ContextVar[tuple[object, Path] | None] = ContextVar("kaygraph_batch_prefix", default=None)


# -- drivers ---------------------------------------------------------------------------------


def drive(steps: Steps) -> Any:
    """Run an engine generator synchronously: call what it yields, send back the result."""
    try:
        call, args = next(steps)
        while True:
            try:
                result = call(*args)
            except BaseException as exc:
                call, args = steps.throw(exc)
            else:
                call, args = steps.send(result)
    except StopIteration as stop:
        return stop.value


async def drive_async(steps: Steps) -> Any:
    """Run an engine generator in a task: like :func:`drive`, awaiting awaitable results."""
    try:
        call, args = next(steps)
        while True:
            try:
                result = call(*args)
                if hasattr(result, "__await__"):
                    result = await result
            except BaseException as exc:
                call, args = steps.throw(exc)
            else:
                call, args = steps.send(result)
    except StopIteration as stop:
        return stop.value


def drive_nodes(steps: Generator[Any, Any, Any], shared: Any) -> Any:
    """:func:`drive` for :func:`graph_steps`, which yields node copies (not call tuples: the hot path)."""
    try:
        node = next(steps)
        while True:
            try:
                action = node._run(shared)
            except BaseException as exc:
                node = steps.throw(exc)
            else:
                node = steps.send(action)
    except StopIteration as stop:
        return stop.value


async def drive_nodes_async(steps: Generator[Any, Any, Any], shared: Any) -> Any:
    """:func:`drive_nodes` for async graphs: awaits async nodes, calls sync ones."""
    try:
        node = next(steps)
        while True:
            try:
                action = await node._run_async(shared) if node._kg_async_hooks else node._run(shared)
            except BaseException as exc:
                node = steps.throw(exc)
            else:
                node = steps.send(action)
    except StopIteration as stop:
        return stop.value


# -- a whole run ------------------------------------------------------------------------------


def run_steps(graph: Any, runner: Any, shared: Any, body: Any, args: tuple[Any, ...]) -> Steps:
    """A top-level run with listeners: ``on_run_start``, the body, ``on_run_end`` (with the error,
    which a failing listener cannot replace)."""
    ctx = runner._run_ctx
    started = time.perf_counter()
    action = error = None
    try:
        ctx.emit("on_run_start", graph=graph, shared=shared)
        action = yield body, args
    except BaseException as exc:
        error = exc
        raise
    finally:
        duration = time.perf_counter() - started
        ctx.emit("on_run_end", graph=graph, shared=shared, action=action, error=error, duration=duration)
    return action


# -- one node: lifecycle hooks and retries -----------------------------------------------------


def lifecycle(node: Any, shared: Any, prep: Any, work: Any, post: Any) -> Steps:
    """``before_prep`` -> prep -> work -> ``after_exec`` -> post, with ``on_error`` (returning True
    suppresses the error: the step returns None, 0.3's rule); the caller passes sync or async methods."""
    enabled = node._hooks_enabled
    try:
        if "before_prep" in enabled:
            yield node.before_prep, (shared,)
        prep_res = yield prep, (shared,)
        exec_res = yield work, (shared, prep_res)
        if "after_exec" in enabled:
            yield node.after_exec, (shared, prep_res, exec_res)
        return (yield post, (shared, prep_res, exec_res))
    except Exception as exc:
        if "on_error" not in enabled:
            raise
        _log.failed(node, exc)
        if (yield node.on_error, (shared, exc)) is True:
            _log.suppressed(node)
            return None
        raise


def attempts(node: Any, prep_res: Any, run: Any, fallback: Any, sleep: Any, failed: Any = None) -> Steps:
    """Up to ``max_retries`` attempts of ``run(prep_res)``, ``wait`` seconds apart, then
    ``fallback(prep_res, last_error)``. ``failed``: the first attempt already raised it."""
    for attempt in range(node.max_retries):
        node.cur_retry = attempt
        try:
            if failed is not None:
                error, failed = failed, None
                raise error
            return (yield run, (prep_res,))
        except Exception as exc:
            _log.attempt_failed(node, attempt, exc)
            if attempt == node.max_retries - 1:
                try:
                    return (yield fallback, (prep_res, exc))
                except BaseException as final:
                    mark_attempts(final, attempt + 1, node._run_ctx)
                    raise
            retrying(node, attempt, exc)
            if node.wait > 0:
                yield sleep, (node.wait,)
            node._check_cancel()


def retrying(node: Any, attempt: int, error: BaseException) -> None:
    """Tell the log and the listeners that attempt ``attempt`` (0-based) failed and will be retried."""
    _log.retrying(node, attempt)
    ctx = node._run_ctx
    if ctx is not None:
        ctx.emit_for("on_retry", node, attempt=attempt + 1, error=error, wait=node.wait)


def mark_attempts(exc: BaseException, count: int, ctx: object) -> None:
    """Remember how many attempts failed (for this run), for the note the graph adds."""
    exc.kaygraph_attempts = count  # type: ignore[attr-defined]
    exc._kaygraph_attempts_by = ctx  # type: ignore[attr-defined]


def attempts_of(exc: BaseException, ctx: RunContext | None) -> int | None:
    """How many exec attempts failed in this run before ``exc`` escaped, if it came from exec."""
    if getattr(exc, "_kaygraph_attempts_by", None) is ctx:
        return getattr(exc, "kaygraph_attempts", None)
    return None


# -- one level of a graph ----------------------------------------------------------------------


def graph_steps(graph: Any, shared: Any, params: dict[str, Any] | None) -> Generator[Any, Any, Any]:
    """Run the nodes of one graph level from its start (or resume) node, following actions: yields
    each step's node copy (for :func:`drive_nodes` or its async twin) and receives its action."""
    ctx = graph._run_ctx or RunContext(graph)
    curr, done_items, resumed_action = graph._entry(ctx)
    if curr is None:
        return resumed_action
    params = params or {**graph.params}
    listening = bool(ctx.listeners)
    starting = listening and ctx.wants("on_node_start")  # asked once per level, not per step
    ending = listening and ctx.wants("on_node_end")
    logging_steps = ctx.log_steps
    observed = listening or logging_steps  # one test per step on the plain path
    scoped = batch_prefix.get()  # in a batch graph's parameter set, paths pass through its index
    prefix = scoped[1] if scoped is not None and scoped[0] is graph else graph._kg_path
    ids = graph._ids
    limit = graph.max_steps or _UNLIMITED
    cancel = ctx.cancel
    config = graph.__dict__.get("config") or None  # given to the graph, or handed down to it
    steps = 0
    action = None
    while curr is not None:
        steps += 1
        if steps > limit:
            graph._too_many_steps(curr)
        if cancel is not None and cancel.cancelled:
            raise cancelled_error(cancel, ids.get(id(curr)) or curr.node_id, ctx.run_id)
        node = curr._fresh_copy()
        node.set_params(params)
        node._run_ctx = ctx
        if curr._kg_ambiguous_id:  # a node shared by graphs: tell it its id in this one
            node._node_id = ids.get(id(curr))
        if done_items is not None:
            node._kg_done_items, done_items = done_items, None
        if config is not None and not node.config:
            node.config = config
        try:
            if observed:
                node_id = ids.get(id(curr)) or curr.node_id
                started = time.perf_counter()
                if listening:
                    node._kg_path = path = (*prefix, node_id)
                    node._node_id = node_id
                if logging_steps:
                    _log.step_started(graph, node, node_id)
                if starting:  # a listener failing fails the step, once every listener heard it
                    ctx.emit("on_node_start", node=node, node_id=node_id, path=path, shared=shared,
                             params=params)
            action = yield node
            nxt = graph.get_next_node(node, action)
        except BaseException as caught:  # cancellation and Ctrl-C too: listeners must close the step
            node_id = ids.get(id(curr)) or curr.node_id
            exc = caught
            if cancel is not None and cancel.cancelled and not isinstance(caught, Exception):
                exc = cancelled_error(cancel, node_id, ctx.run_id)  # the token cancelled the awaited work
            if listening or isinstance(exc, Exception):
                note_failure(graph, exc, node, node_id, ctx)
            if listening:  # a listener failing here cannot replace the error (it becomes a note)
                ctx.emit("on_node_error", node=node, node_id=node_id, path=path, error=exc,
                         attempts=attempts_of(exc, ctx), duration=time.perf_counter() - started)
            if exc is caught:
                raise
            raise exc from caught
        if observed:
            if logging_steps:
                _log.step_finished(node, node_id, started, action)
            if ending:
                next_id = None if nxt is None else (ids.get(id(nxt)) or nxt.node_id)
                ctx.emit("on_node_end", node=node, node_id=node_id, path=path, shared=shared, params=params,
                         action=action, duration=time.perf_counter() - started, next_node_id=next_id)
        curr = nxt
    if logging_steps:
        _log.level_finished(graph, action)
    return action


def note_failure(graph: Any, exc: BaseException, node: Any, node_id: str, ctx: RunContext | None) -> None:
    """Name the failing node on the exception once per run (innermost graph wins), as a PEP 678
    note, and log the failure at ERROR as 0.3 did."""
    if isinstance(exc, RunCancelled) or (ctx is not None and getattr(exc, "_kaygraph_noted_by", None) is ctx):
        return  # a cancellation names its node already; an outer graph leaves the inner one's note
    exc._kaygraph_noted_by = ctx  # type: ignore[attr-defined]
    exc.kaygraph_node_id = node_id  # type: ignore[attr-defined]
    _log.failed(node, exc, node_id)
    count = attempts_of(exc, ctx)
    detail = f" after {count} attempt(s)" if count else ""
    kind = type(node).__name__
    add_note(exc, f"KayGraph: node {node_id!r} ({kind}) of graph {graph.name!r} failed{detail}")


# -- batch items and parameter sets ------------------------------------------------------------


class ItemScope:
    """Reports one batch item (or parameter set) to listeners: its start when made, its end on
    :meth:`end`. With ``graph_prefix``, the nodes run meanwhile get paths through its index."""

    __slots__ = ("index", "node", "prefix_token", "started")

    def __init__(self, node: Any, index: int, item: Any, *, graph_prefix: bool = False) -> None:
        self.node = node
        self.index = index
        self.prefix_token = batch_prefix.set((node, (*node._kg_path, index))) if graph_prefix else None
        self.started = time.perf_counter()
        try:
            size = node._kg_batch_size
            node._run_ctx.emit_for("on_batch_item_start", node, index=index, item=item, size=size)
        except BaseException as exc:
            self.end(error=exc)
            raise

    def end(self, *, result: Any = None, error: BaseException | None = None) -> None:
        if self.prefix_token is not None:
            batch_prefix.reset(self.prefix_token)
            self.prefix_token = None
        node = self.node
        duration = time.perf_counter() - self.started
        node._run_ctx.emit_for("on_batch_item_end", node, index=self.index, result=result, error=error,
                               duration=duration)


def one_item(
    node: Any, index: int, item: Any, call: Any, args: tuple[Any, ...], *, prefix: bool = False
) -> Steps:
    """``call(*args)`` for one batch item (or, with ``prefix``, a batch graph's parameter set),
    reported to the run's listeners as an :class:`ItemScope`."""
    ctx = node._run_ctx
    if ctx is None or not ctx.listeners:
        return (yield call, args)
    scope = ItemScope(node, index, item, graph_prefix=prefix)
    try:
        result = yield call, args
    except BaseException as exc:
        scope.end(error=exc)
        raise
    scope.end(result=result)
    return result


def batch_items(node: Any, items: list[Any], run_item: Any) -> Steps:
    """The items of a sequential batch node, in order: skip the finished ones (resume), stop
    before the next one when cancelled, report each to listeners."""
    done = node._kg_done_items or {}
    results = []
    for index, item in enumerate(items):
        if index in done:
            results.append(done[index])
            continue
        node._check_cancel()
        results.append((yield from one_item(node, index, item, run_item, (item,))))
    return results


def param_sets(graph: Any, shared: Any, prepared: Any, run_level: Any) -> Steps:
    """A batch graph's parameter sets, one after another: each merged over the graph's params
    and run by ``run_level(shared, params)``; resumes at the checkpointed set."""
    graph._kg_batch_size = len(prepared) if hasattr(prepared, "__len__") else None
    ctx = graph._run_ctx or RunContext(graph)
    done = graph._kg_done_items or {}
    resume, skip_below = ctx.resume, 0
    if resume is not None:  # resuming: start at the checkpointed set
        index, is_last = resume.take()
        if not isinstance(index, int) or isinstance(index, bool):
            graph._bad_resume(ctx, resume, f"expected a parameter-set index for batch graph, got {index!r}")
        assert isinstance(index, int)
        skip_below = index
        if is_last:
            ctx.resume = None
    count = 0
    for index, batch_params in enumerate(prepared):
        count = index + 1
        if index < skip_below or index in done:
            continue
        graph._check_cancel()
        yield from param_set(graph, shared, index, batch_params, run_level)
    if resume is not None and skip_below >= count:
        raise GraphExecutionError(
            f"cannot resume run {ctx.run_id!r} at parameter set {skip_below} of batch graph "
            f"{graph.name!r}: its prep returned {count} set(s) this time. prep must return the same "
            "sets when a run resumes; restore them or start a new run.",
            graph=graph.name,
        )


def param_set(graph: Any, shared: Any, index: int, batch_params: dict[str, Any], run_level: Any) -> Steps:
    """One parameter set of a batch graph, merged over its params, reported as a batch item."""
    params = {**graph.params, **batch_params}
    yield from one_item(graph, index, batch_params, run_level, (shared, params), prefix=True)
