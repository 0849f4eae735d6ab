"""Async twins of the nodes and graphs. ``asyncio`` is imported only when something waits or
gathers, so ``import kaygraph`` stays fast."""

from __future__ import annotations

import time
import warnings
from contextvars import ContextVar

from .batch_node import (
    BatchGraph,
    BatchNode,
    _batch_resume,
    _check_workers,
    _item_ended,
    _item_started,
    _listening,
    _missing_param_set,
    _size_of,
)
from .events import RunContext
from .exceptions import NodeExecutionError
from .graph import Graph, _batch_prefix
from .node import Node, _mark_attempts

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from .cancel import CancelToken
    from .events import ResumePoint
    from .executor import Executor



#: The attempt of the async parallel batch item running in the current task.
_item_retry: ContextVar[int] = ContextVar("kaygraph_item_retry", default=0)


async def _call_hook(hook: Callable[..., Any], *args: Any) -> None:
    """Hooks of async nodes may be plain or ``async def``."""
    result = hook(*args)
    if hasattr(result, "__await__"):
        await result


class AsyncNode(Node):
    """A node whose lifecycle is ``prep_async`` -> ``exec_async`` -> ``post_async``, awaited in an
    AsyncGraph or with ``await node.run_async(shared)``. Its hooks may be ``async def``."""

    _kg_async_hooks = True

    async def prep_async(self, shared: Any) -> Any:
        """Async ``prep``."""

    async def exec_async(self, prep_res: Any) -> Any:
        """Async ``exec``; retried like ``exec``."""

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        """Called when the last attempt failed; re-raise by default."""
        raise exc

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Async ``post``; returns the next action."""

    async def _exec(self, prep_res: Any) -> Any:
        if self.remote and self._on_executor():
            from .executor import run_on_executor_async

            return (await run_on_executor_async(self, [(0, prep_res)], batch=False))[0]
        for attempt in range(self.max_retries):
            self.cur_retry = attempt
            try:
                return await self.exec_async(prep_res)
            except Exception as exc:
                if self.cur_retry == self.max_retries - 1:
                    return await self._fall_back_async(prep_res, exc)
                self._retrying(exc)
                if self.wait > 0:  # a cancelled run cancels this task, which ends the sleep
                    import asyncio

                    await asyncio.sleep(self.wait)
                self._check_cancel()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fall_back_async(self, prep_res: Any, exc: Exception) -> Any:
        try:
            return await self.exec_fallback_async(prep_res, exc)
        except BaseException as final:
            _mark_attempts(final, self.cur_retry + 1, self._run_ctx)
            raise

    async def run_async(self, shared: Any) -> Any:
        """Run this node alone (successors are not followed: put it in an AsyncGraph for that)."""
        if self.successors:
            warnings.warn("Node won't run successors. Use AsyncGraph.", stacklevel=2)
        return await self._run_async(shared)

    async def _run_async(self, shared: Any) -> Any:
        if self._has_hooks:
            return await self._run_async_with_hooks(shared)
        prep_res = await self.prep_async(shared)
        return await self.post_async(shared, prep_res, await self._exec(prep_res))

    async def _run_async_with_hooks(self, shared: Any) -> Any:
        enabled = self._hooks_enabled
        try:
            if "before_prep" in enabled:
                await _call_hook(self.before_prep, shared)
            prep_res = await self._hooked_prep_async(shared)
            exec_res = await self._hooked_exec_async(shared, prep_res)
            if "after_exec" in enabled:
                await _call_hook(self.after_exec, shared, prep_res, exec_res)
            return await self.post_async(shared, prep_res, exec_res)
        except Exception as exc:
            if "on_error" in enabled:
                await _call_hook(self.on_error, shared, exc)
            raise

    async def _hooked_prep_async(self, shared: Any) -> Any:
        return await self.prep_async(shared)

    async def _hooked_exec_async(self, shared: Any, prep_res: Any) -> Any:
        return await self._exec(prep_res)

    def _run(self, shared: Any) -> Any:
        raise NodeExecutionError(
            f"{type(self).__name__} {self.node_id!r} is async and cannot run synchronously: use "
            "`await node.run_async(shared)` or put it in an AsyncGraph and "
            "`await graph.run_async(shared)`",
            node_id=self.node_id,
        )


async def _run_any(node: Any, shared: Any) -> Any:
    if isinstance(node, AsyncNode):
        return await node._run_async(shared)
    return node._run(shared)


class AsyncBatchNode(AsyncNode, BatchNode):
    """Awaits ``exec_async`` once per item, one item after another."""

    async def _exec(self, items: Any) -> Any:
        done = self._kg_done_items or {}
        items = list(items if items is not None else ())
        self._kg_batch_size = len(items)
        if self._on_executor():
            return await _exec_on_executor_async(self, items, done)
        results = []
        for index, item in enumerate(items):
            if index in done:
                results.append(done[index])
                continue
            self._check_cancel()
            results.append(await self._exec_item_async(index, item))
        return results

    async def _exec_item_async(self, index: int, item: Any) -> Any:
        if not _listening(self):
            return await AsyncNode._exec(self, item)
        started = time.perf_counter()
        try:
            started = _item_started(self, index, item)
            result = await AsyncNode._exec(self, item)
        except BaseException as exc:  # cancellation too: listeners must close the item
            _item_ended(self, index, started, error=exc)
            raise
        _item_ended(self, index, started, result=result)
        return result


class AsyncParallelBatchNode(AsyncBatchNode):
    """Awaits ``exec_async`` for all items concurrently, at most ``max_concurrency`` at a time
    (None: unbounded). Rate-limited APIs want a limit; results keep item order.

    Items run on the node itself, as in PocketFlow (state set between awaits is shared by the
    items); ``cur_retry`` is kept per item, since each item runs in its own task.
    """

    @property
    def cur_retry(self) -> int:
        return _item_retry.get()

    @cur_retry.setter
    def cur_retry(self, attempt: int) -> None:
        _item_retry.set(attempt)

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        *,
        max_concurrency: int | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(max_retries, wait, node_id=node_id)
        _check_workers(type(self).__name__, "max_concurrency", max_concurrency)
        self.max_concurrency = max_concurrency

    async def _exec(self, items: Any) -> Any:
        items = list(items if items is not None else ())
        self._kg_batch_size = len(items)
        done = self._kg_done_items or {}
        if self._on_executor():
            return await _exec_on_executor_async(self, items, done)

        async def run_item(index: int) -> Any:
            if index in done:
                return done[index]
            self._check_cancel()
            return await self._exec_item_async(index, items[index])  # on self, as in PocketFlow

        return await _gather_limited(run_item, range(len(items)), self.max_concurrency)


async def _exec_on_executor_async(node: Any, items: list[Any], done: dict[int, Any]) -> list[Any]:
    from .executor import run_on_executor_async

    todo = [(index, item) for index, item in enumerate(items) if index not in done]
    results = await run_on_executor_async(node, todo, batch=True) if todo else {}
    return [done[index] if index in done else results[index] for index in range(len(items))]


async def _gather_limited(run: Any, indices: Iterable[int], limit: int | None) -> list[Any]:
    """Results of ``run(i)`` for every index, in order, at most ``limit`` awaiting at once.

    Unlike a bare ``gather``, the first failure cancels every item still waiting or running, so
    no LLM call starts after the run has already failed.
    """
    import asyncio

    semaphore = asyncio.Semaphore(limit) if limit is not None else None
    failed = False

    async def bounded(index: int) -> Any:
        nonlocal failed
        if semaphore is None:
            return await run(index)
        async with semaphore:
            if failed:  # woken by the failing item's release: do not start an LLM call now
                raise asyncio.CancelledError
            try:
                return await run(index)
            except BaseException:
                failed = True
                raise

    tasks = [asyncio.ensure_future(bounded(index)) for index in indices]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]


async def _cancellable(body: Any, token: CancelToken, ctx: RunContext) -> Any:
    """Await ``body`` in a task of its own that ``token.cancel()`` cancels, from any thread."""
    import asyncio

    loop = asyncio.get_running_loop()
    task = loop.create_task(body)

    def cancel_task(_token: object) -> None:
        loop.call_soon_threadsafe(task.cancel)

    token.add_callback(cancel_task)
    try:
        return await task
    except asyncio.CancelledError:
        if token.cancelled and task.cancelled():  # stopped outside any node (e.g. in a graph's prep)
            from .cancel import cancelled_error

            raise cancelled_error(token, None, ctx.run_id) from None
        raise
    finally:
        token.remove_callback(cancel_task)


class AsyncGraph(Graph, AsyncNode):
    """A graph that awaits async nodes and calls sync ones; run it with ``await graph.run_async(shared)``."""

    async def run_async(
        self,
        shared: Any,
        *,
        listeners: Iterable[Any] | None = None,
        run_id: str | None = None,
        resume: ResumePoint | None = None,
        cancel: CancelToken | None = None,
        executor: Executor | None = None,
    ) -> Any:
        """Run the graph on ``shared`` and return the last action; arguments as in ``Graph.run``.

        With ``cancel``, the run's body runs in a task of its own that the token cancels: the
        awaited work (an LLM call, a gather of batch items) is cancelled, not just the next step.
        """
        if self.successors:
            warnings.warn("Node won't run successors. Use AsyncGraph.", stacklevel=2)
        runner = self._begin_run(listeners, run_id, resume, cancel, executor)
        ctx = runner._run_ctx
        assert ctx is not None
        if not ctx.listeners:
            if cancel is None:
                return await runner._run_async(shared)
            return await _cancellable(runner._run_async(shared), cancel, ctx)
        import time

        started = time.perf_counter()
        try:
            ctx.emit("on_run_start", graph=self, shared=shared)
            if cancel is None:
                action = await runner._run_async(shared)
            else:
                action = await _cancellable(runner._run_async(shared), cancel, ctx)
        except BaseException as exc:
            self._run_failed(ctx, shared, exc, started)
            raise
        self._run_succeeded(ctx, shared, action, started)
        return action

    def _run(self, shared: Any) -> Any:
        return AsyncNode._run(self, shared)

    async def _run_async(self, shared: Any) -> Any:
        if self._has_hooks:
            return await self._run_async_with_hooks(shared)
        prep_res = await self.prep_async(shared)
        return await self.post_async(shared, prep_res, await self._orch_async(shared))

    async def _hooked_exec_async(self, shared: Any, prep_res: Any) -> Any:
        return await self._orch_async(shared)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        ctx = self._run_ctx or RunContext(self)
        curr, done_items, resumed_action = self._entry(ctx)
        if curr is None:
            return resumed_action
        merged = params or {**self.params}
        listening = bool(ctx.listeners)
        prefix = self._path_prefix() if listening else ()
        ids = self._ids
        limit = self.max_steps
        cancel = ctx.cancel
        steps = 0
        last_action = None
        while curr is not None:
            steps += 1
            if limit is not None and steps > limit:
                self._too_many_steps(curr)
            if cancel is not None and cancel.cancelled:
                self._stop_cancelled(ctx, curr)
            node = curr._fresh_copy()
            node.set_params(merged)
            node._run_ctx = ctx
            if done_items is not None:
                node._kg_done_items, done_items = done_items, None
            node_id = ids.get(id(curr)) or curr.node_id
            if curr._kg_ambiguous_id:  # a node shared by graphs: tell it its id in this one
                node._node_id = node_id
            if listening:
                path, started = self._step_started(node, node_id, shared, merged, prefix)
            try:
                last_action = await _run_any(node, shared)
                nxt = self.get_next_node(node, last_action)
            except BaseException as caught:  # cancellation too: listeners must close the step
                exc = caught
                if cancel is not None and cancel.cancelled and not isinstance(caught, Exception):
                    from .cancel import cancelled_error  # the token cancelled the awaited work

                    exc = cancelled_error(cancel, node_id, ctx.run_id)
                if listening:
                    self._step_failed(node, path, exc, started)
                elif isinstance(exc, Exception):
                    self._note_failure(exc, node, node_id, ctx)
                if exc is caught:
                    raise
                raise exc from caught
            if listening:
                self._step_finished(node, path, shared, merged, last_action, nxt, started)
            curr = nxt
        return last_action


class AsyncBatchGraph(AsyncGraph, BatchGraph):
    """Runs its graph once per parameter set from ``prep_async``, one set after another."""

    async def _run_async(self, shared: Any) -> Any:
        if self._has_hooks:
            return await self._run_async_with_hooks(shared)
        param_sets = await self.prep_async(shared) or []
        await self._run_param_sets_async(shared, param_sets)
        return await self.post_async(shared, param_sets, None)

    async def _hooked_prep_async(self, shared: Any) -> Any:
        return await self.prep_async(shared) or []

    async def _hooked_exec_async(self, shared: Any, prep_res: Any) -> Any:
        await self._run_param_sets_async(shared, prep_res)

    async def _run_param_sets_async(self, shared: Any, param_sets: Any) -> None:
        self._kg_batch_size = _size_of(param_sets)
        ctx = self._run_ctx or RunContext(self)
        skip_below, done, resuming = _batch_resume(self, ctx)
        count = 0
        for index, batch_params in enumerate(param_sets):
            count = index + 1
            if index < skip_below or index in done:
                continue
            self._check_cancel()
            await self._run_param_set_async(shared, index, batch_params)
        if resuming and skip_below >= count:
            _missing_param_set(self, ctx, skip_below, count)

    async def _run_param_set_async(self, shared: Any, index: int, batch_params: dict[str, Any]) -> None:
        params = {**self.params, **batch_params}
        if not _listening(self):
            await self._orch_async(shared, params)
            return
        started = time.perf_counter()
        token = _batch_prefix.set((self, (*self._kg_path, index)))
        try:
            started = _item_started(self, index, batch_params)
            await self._orch_async(shared, params)
        except BaseException as exc:  # cancellation too: listeners must close the item
            _item_ended(self, index, started, error=exc)
            raise
        finally:
            _batch_prefix.reset(token)
        _item_ended(self, index, started, result=None)


class AsyncParallelBatchGraph(AsyncBatchGraph):
    """Runs its graph for all parameter sets concurrently, at most ``max_concurrency`` at a time.

    The first failure cancels the sets still running. It resumes as a whole: finished sets are
    skipped, unfinished ones run again from their start.
    """

    def __init__(
        self,
        start: Any = None,
        *,
        name: str | None = None,
        node_id: str | None = None,
        max_steps: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__(start, name=name, node_id=node_id, max_steps=max_steps)
        _check_workers(type(self).__name__, "max_concurrency", max_concurrency)
        self.max_concurrency = max_concurrency

    async def _run_param_sets_async(self, shared: Any, prepared: Any) -> None:
        param_sets = list(prepared)  # PocketFlow accepts any iterable; post still gets `prepared`
        self._kg_batch_size = len(param_sets)
        ctx = self._run_ctx or RunContext(self)
        _, done, _ = _batch_resume(self, ctx, parallel=True)

        async def run_set(index: int) -> None:
            if index not in done:
                await self._run_param_set_async(shared, index, param_sets[index])

        await _gather_limited(run_set, range(len(param_sets)), self.max_concurrency)
