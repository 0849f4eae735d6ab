"""Async twins of the nodes and graphs: the engine's generators driven by ``drive_async``.

``asyncio`` is imported only when something waits or gathers, so ``import kaygraph`` stays fast.
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar

from . import engine
from .base_node import check_count
from .batch_node import BatchGraph, BatchNode
from .cancel import cancelled_error
from .engine import drive_async, lifecycle
from .events import RunContext
from .exceptions import NodeExecutionError
from .graph import Graph
from .node import Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from .cancel import CancelToken
    from .events import ResumePoint
    from .executor import Executor


#: The attempt of the async parallel batch item running in the current task.
_item_retry: ContextVar[int] = ContextVar("kaygraph_item_retry", default=0)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)  # a cancelled run cancels this task, which ends the sleep


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

            return (await run_on_executor_async(self, [prep_res], batch=False))[0]
        failed = None
        if self.max_retries == 1:  # the common case, without the engine's retry loop
            self.cur_retry = 0
            try:
                return await self.exec_async(prep_res)
            except Exception as exc:
                failed = exc
        steps = engine.attempts(self, prep_res, self.exec_async, self.exec_fallback_async, _sleep, failed)
        return await drive_async(steps)

    async def run_async(self, shared: Any) -> Any:
        """Run this node alone (successors are not followed: put it in an AsyncGraph for that)."""
        if self.successors:
            warnings.warn("Node won't run successors. Use AsyncGraph.", stacklevel=2)
        return await self._run_async(shared)

    async def _run_async(self, shared: Any) -> Any:
        if self._has_hooks:
            steps = lifecycle(self, shared, self._hooked_prep_async, self._hooked_exec_async, self.post_async)
            return await drive_async(steps)
        prep_res = await self.prep_async(shared)
        return await self.post_async(shared, prep_res, await self._exec(prep_res))

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


class AsyncBatchNode(AsyncNode, BatchNode):
    """Awaits ``exec_async`` once per item, one item after another."""

    async def _exec(self, items: Any) -> Any:
        items = list(items if items is not None else ())
        self._kg_batch_size = len(items)
        if self._on_executor():
            from .executor import run_on_executor_async

            return await run_on_executor_async(self, items, batch=True)
        return await self._exec_items(items)

    async def _exec_items(self, items: list[Any]) -> Any:
        return await drive_async(engine.batch_items(self, items, super()._exec))


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

    def __init__(self, *args: Any, max_concurrency: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_count(type(self).__name__, "max_concurrency", max_concurrency)
        self.max_concurrency = max_concurrency

    async def _exec_items(self, items: list[Any]) -> Any:
        done = self._kg_done_items or {}

        async def run_item(index: int) -> Any:
            if index in done:
                return done[index]
            self._check_cancel()
            item = items[index]  # run on self, as in PocketFlow
            return await drive_async(engine.one_item(self, index, item, AsyncNode._exec, (self, item)))

        return await _gather_limited(run_item, range(len(items)), self.max_concurrency)


async def _gather_limited(run: Any, indices: Iterable[int], limit: int | None) -> list[Any]:
    """Results of ``run(i)`` for every index, in order, at most ``limit`` awaiting at once. Unlike a
    bare ``gather``, the first failure cancels every item still waiting or running."""
    import asyncio

    semaphore = asyncio.Semaphore(limit or 1)  # used only with a limit
    failed = False

    async def bounded(index: int) -> Any:
        nonlocal failed
        async with semaphore:
            if failed:  # woken by the failing item's release: do not start an LLM call now
                raise asyncio.CancelledError
            try:
                return await run(index)
            except BaseException:
                failed = True
                raise

    tasks = [asyncio.ensure_future(run(index) if limit is None else bounded(index)) for index in indices]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return [task.result() for task in tasks]


async def _cancellable(runner: Any, shared: Any) -> Any:
    """Run the graph's body in a task of its own that the run's token cancels, from any thread:
    the awaited work (an LLM call, a gather of items) is cancelled, not only the next step."""
    import asyncio

    ctx = runner._run_ctx
    token = ctx.cancel
    loop = asyncio.get_running_loop()
    task = loop.create_task(runner._run_async(shared))

    def cancel_task(_token: object) -> None:
        loop.call_soon_threadsafe(task.cancel)

    token.add_callback(cancel_task)
    try:
        return await task
    except asyncio.CancelledError:
        if token.cancelled and task.cancelled():  # stopped outside any node (e.g. in a graph's prep)
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
        """Run the graph on ``shared`` and return the last action; arguments as in ``Graph.run``
        (a ``cancel`` token also cancels the awaited work, not just the next step)."""
        runner = self._begin_run(listeners, run_id, resume, cancel, executor)
        body, args = (runner._run_async, (shared,)) if cancel is None else (_cancellable, (runner, shared))
        if not runner._run_ctx.listeners:  # type: ignore[union-attr]
            return await body(*args)
        return await drive_async(engine.run_steps(self, runner, shared, body, args))

    _run = AsyncNode._run

    async def _run_async(self, shared: Any) -> Any:
        if self._has_hooks:
            steps = lifecycle(self, shared, self._hooked_prep_async, self._hooked_exec_async, self.post_async)
            return await drive_async(steps)
        prep_res = await self._hooked_prep_async(shared)
        return await self.post_async(shared, prep_res, await self._hooked_exec_async(shared, prep_res))

    async def _hooked_exec_async(self, shared: Any, prep_res: Any) -> Any:
        return await self._orch_async(shared)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        """Run this graph's nodes (see :func:`kaygraph.core.engine.graph_steps`)."""
        return await engine.drive_nodes_async(engine.graph_steps(self, shared, params), shared)


class AsyncBatchGraph(AsyncGraph, BatchGraph):
    """Runs its graph once per parameter set from ``prep_async``, one set after another."""

    async def _hooked_prep_async(self, shared: Any) -> Any:
        return await self.prep_async(shared) or []

    async def _hooked_exec_async(self, shared: Any, prep_res: Any) -> Any:
        await drive_async(engine.param_sets(self, shared, prep_res, self._orch_async))


class AsyncParallelBatchGraph(AsyncBatchGraph):
    """Runs its graph for all parameter sets concurrently, at most ``max_concurrency`` at a time.

    The first failure cancels the sets still running. It resumes as a whole: finished sets are
    skipped, unfinished ones run again from their start.
    """

    def __init__(self, *args: Any, max_concurrency: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_count(type(self).__name__, "max_concurrency", max_concurrency)
        self.max_concurrency = max_concurrency

    async def _hooked_exec_async(self, shared: Any, prepared: Any) -> Any:
        param_list = list(prepared)  # PocketFlow accepts any iterable; post still gets `prepared`
        self._kg_batch_size = len(param_list)
        ctx = self._run_ctx or RunContext(self)
        if ctx.resume is not None:
            why = f"{type(self).__name__} runs its parameter sets concurrently, so it resumes only as a whole"
            self._bad_resume(ctx, ctx.resume, why + ", with the finished set indices as completed_items")
        done = self._kg_done_items or {}

        async def run_set(index: int) -> None:
            if index not in done:
                self._check_cancel()
                await drive_async(engine.param_set(self, shared, index, param_list[index], self._orch_async))

        await _gather_limited(run_set, range(len(param_list)), self.max_concurrency)
