"""The execution seam: where a batch item's ``exec`` (and a ``remote = True`` node's) runs.

``graph.run(shared, executor=ex)`` hands each batch item of BatchNode, ParallelBatchNode and
their async twins, and the ``exec`` of every node whose class sets ``remote = True``, to
``ex.submit(run_exec_chunk, node_copy, [(index, prep_res_item), ...])``. The call makes ONE
attempt per item and returns ``("ok", value)`` or ``("error", exception)`` for each. Everything
else stays in the calling process: ``prep``, ``post``, hooks, listener events, retries (a failed
item is resubmitted after ``wait``, cancellably), ``exec_fallback`` and cancellation. So a Dask or
Ray executor is a thin adapter that only ships calls.

Without ``executor=`` nothing here is imported and nodes run as before (inline, on the node's own
thread pool, or as asyncio tasks).
"""

from __future__ import annotations

import contextvars
import heapq
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from . import log as _log
from .cancel import cancelled_error
from .engine import ItemScope, drive, drive_async, mark_attempts, retrying

if TYPE_CHECKING:
    from collections.abc import Callable

    from .engine import Steps

#: What one item of a chunk came to: ("ok", value) or ("error", exception).
Outcome = tuple[str, Any]


@runtime_checkable
class Executor(Protocol):
    """Anything with ``submit(fn, /, *args) -> concurrent.futures.Future``
    (``concurrent.futures.ThreadPoolExecutor`` qualifies as it is).

    Optional, used when present: ``chunk_size(n_items) -> int`` (items per submit, default 1),
    ``max_in_flight`` (submits outstanding at once; default the node's ``max_workers`` /
    ``max_concurrency``, else unbounded), and ``supports_resources = True`` to receive a node's
    ``resources`` as ``submit(fn, *args, resources={...})``. A Future whose ``cancel()`` can stop
    running work (Ray) makes cancellation reach it.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]: ...


class InlineExecutor:
    """Runs each submitted call at once in the calling thread: the default executor, whose
    behaviour equals passing none (apart from the per-item attempt seam). Useful in tests."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def __repr__(self) -> str:
        return "InlineExecutor()"


def run_exec_chunk(node: Any, items: list[tuple[int, Any]]) -> list[Outcome]:
    """One attempt of ``node``'s exec per ``(index, prep_res)`` item, in order, where the executor
    runs it (possibly another process); exceptions are returned, never raised."""
    if getattr(node, "_kg_async_hooks", False):  # an AsyncNode: run exec_async in a loop of our own
        return _run_coroutine(_run_chunk_async(node, items))  # type: ignore[no-any-return]
    node.cur_retry = node._kg_attempt
    outcomes: list[Outcome] = []
    for _, item in items:
        try:
            outcomes.append(("ok", node.exec(item)))
        except Exception as exc:
            outcomes.append(("error", exc))
    return outcomes


async def _run_chunk_async(node: Any, items: list[tuple[int, Any]]) -> list[Outcome]:
    node.cur_retry = node._kg_attempt  # here: AsyncParallelBatchNode keeps it in a context variable
    outcomes: list[Outcome] = []
    for _, item in items:
        try:
            outcomes.append(("ok", await node.exec_async(item)))
        except Exception as exc:
            outcomes.append(("error", exc))
    return outcomes


def _run_coroutine(coroutine: Any) -> Any:
    """``asyncio.run``, also when this thread already runs a loop (an inline executor inside an
    async run): then on a helper thread, since one thread cannot run two loops."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaygraph-chunk") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class _Item:
    __slots__ = ("attempt", "context", "index", "scope", "value")

    def __init__(self, index: int, value: Any) -> None:
        self.index = index
        self.value = value
        self.attempt = 0
        self.scope: ItemScope | None = None  # reports the item to listeners (batch nodes only)
        #: Where the item's listeners run. Items start at submit and end as they come back, in any
        #: order, so what a listener makes current for one (a tracing span) lives in a context of
        #: its own instead of staying current for the rest of the node.
        self.context: contextvars.Context | None = None

    def end(self, **outcome: Any) -> None:
        """Report the item's end (``result=`` or ``error=``) to the listeners that heard it start."""
        if self.scope is not None:
            assert self.context is not None
            self.context.run(self.scope.end, **outcome)


class ExecPlan:
    """The I/O-free bookkeeping of one node's items on an executor, shared by the sync and async
    drivers: what to submit next, what came back, what to retry and when, what needs a fallback.
    """

    def __init__(self, node: Any, executor: Any, items: list[Any], *, batch: bool) -> None:
        self.node = node
        self.executor = executor
        self.batch = batch
        done = (node._kg_done_items or {}) if batch else {}  # a resumed batch: those items are done
        self.results: dict[int, Any] = dict(done)
        self.count = len(items)
        self.ready = deque(_Item(index, value) for index, value in enumerate(items) if index not in done)
        self.retry_at: list[tuple[float, int, _Item]] = []  # heap of (monotonic time, index, item)
        self.in_flight: dict[Any, list[_Item]] = {}
        self.exhausted: deque[tuple[_Item, Exception]] = deque()  # last attempt failed: fallback next
        self.remaining = len(self.ready)
        size = getattr(node, "chunk_size", None)
        if size is None:
            chooser = getattr(executor, "chunk_size", None)
            size = chooser(self.remaining) if callable(chooser) and self.remaining else 1
        self.chunk_size = max(1, int(size or 1))
        limit = getattr(executor, "max_in_flight", None)
        if limit is None:
            limit = getattr(node, "max_workers", None) or getattr(node, "max_concurrency", None)
        self.limit: int | None = limit
        resources = getattr(node, "resources", None)
        self.submit_kwargs = (
            {"resources": dict(resources)}
            if resources and getattr(executor, "supports_resources", False)
            else {}
        )
        ctx = node._run_ctx
        self.ctx = ctx
        self.cancel = None if ctx is None else ctx.cancel
        self.listening = ctx is not None and bool(ctx.listeners)
        self.max_retries = getattr(node, "max_retries", 1)
        self.wait = getattr(node, "wait", 0)

    @property
    def finished(self) -> bool:
        return self.remaining == 0

    def check_cancel(self) -> None:
        cancel = self.cancel
        if cancel is not None and cancel.cancelled:
            ctx = self.ctx
            raise cancelled_error(cancel, self.node.node_id, None if ctx is None else ctx.run_id)

    def submit_ready(self) -> list[Any]:
        """Submit every chunk the in-flight limit allows; returns the new futures."""
        now = time.monotonic()
        due = []
        while self.retry_at and self.retry_at[0][0] <= now:
            due.append(heapq.heappop(self.retry_at)[2])
        # Due retries go first, as a local BatchNode retries an item at once: a broken item then
        # fails the batch early instead of after every other item.
        self.ready.extendleft(reversed(due))
        submitted = []
        while self.ready and (self.limit is None or len(self.in_flight) < self.limit):
            self.check_cancel()
            chunk = [self.ready.popleft()]  # one attempt per chunk: they share the clone's cur_retry
            while self.ready and len(chunk) < self.chunk_size and self.ready[0].attempt == chunk[0].attempt:
                chunk.append(self.ready.popleft())
            for item in chunk:
                if item.attempt == 0 and self.batch and self.listening:
                    item.context = contextvars.copy_context()
                    item.scope = item.context.run(ItemScope, self.node, item.index, item.value)
            clone = self.node._fresh_copy()
            clone._run_ctx = None  # the run's context stays here (listeners, locks, the token)
            clone.successors = {}  # an executor may pickle the node: do not ship the whole graph
            clone._kg_attempt = chunk[0].attempt  # run_exec_chunk sets cur_retry from it
            call: tuple[Any, ...] = (run_exec_chunk, clone, [(item.index, item.value) for item in chunk])
            # A one-item chunk is submitted in its item's context (a remote span nests under the
            # item's); a chunk of several belongs to no single item: the node's context.
            context = chunk[0].context if len(chunk) == 1 else None
            if context is None:
                future = self.executor.submit(*call, **self.submit_kwargs)
            else:
                future = context.run(self.executor.submit, *call, **self.submit_kwargs)
            self.in_flight[future] = chunk
            submitted.append(future)
        return submitted

    def next_retry_in(self) -> float | None:
        """Seconds until the next item waiting for a retry is due (None: none waits)."""
        if not self.retry_at:
            return None
        return max(0.0, self.retry_at[0][0] - time.monotonic())

    def outcomes(self, future: Any, size: int) -> list[Outcome]:
        """What a finished future's chunk of ``size`` items came to, one outcome per item."""
        try:
            outcomes = future.result()
            if not isinstance(outcomes, list) or len(outcomes) != size:
                raise TypeError(
                    f"executor {self.executor!r} returned {outcomes!r} for a chunk of {size} "
                    "item(s); run_exec_chunk returns one (status, value) pair per item"
                )
        except Exception as exc:  # the executor failed the whole chunk: one failed attempt each
            return [("error", exc)] * size
        return outcomes

    def completed(self, future: Any) -> None:
        """Record a finished future: deliver its items that succeeded, schedule a retry for those
        that failed, or queue them in :attr:`exhausted` for the fallback after their last attempt."""
        chunk = self.in_flight.pop(future)
        for item, (status, value) in zip(chunk, self.outcomes(future, len(chunk)), strict=True):
            if status == "ok":
                self.resolved(item, value)
                continue
            _log.attempt_failed(self.node, item.attempt, value)
            if item.attempt + 1 < self.max_retries:
                if item.context is None:
                    retrying(self.node, item.attempt, value)
                else:  # the retry event belongs on the item's span
                    item.context.run(retrying, self.node, item.attempt, value)
                item.attempt += 1
                heapq.heappush(self.retry_at, (time.monotonic() + self.wait, item.index, item))
            else:
                self.exhausted.append((item, value))

    def resolved(self, item: _Item, value: Any) -> None:
        self.results[item.index] = value
        self.remaining -= 1
        item.end(result=value)

    def failed(self, item: _Item, error: BaseException) -> None:
        """The item's fallback raised ``error``: it fails the node."""
        mark_attempts(error, item.attempt + 1, self.ctx)
        item.end(error=error)

    def abandon(self, error: BaseException) -> None:
        """The node failed or was cancelled: cancel what is still in flight. Items whose result
        came back meanwhile are delivered (a checkpointer keeps them, so a resume does not run them
        again), unless an interrupt such as Ctrl-C stops the run; every other item listeners heard
        start ends with ``error``."""
        unfinished = [item for item, _ in self.exhausted] + [item for _, _, item in self.retry_at]
        for future, chunk in self.in_flight.items():
            if not future.done() or future.cancelled() or not isinstance(error, Exception):
                future.cancel()
                unfinished += chunk
                continue
            for item, (status, value) in zip(chunk, self.outcomes(future, len(chunk)), strict=True):
                if status == "ok":
                    self.resolved(item, value)
                else:
                    unfinished.append(item)
        self.in_flight.clear()
        self.retry_at.clear()
        self.exhausted.clear()
        for item in unfinished:
            item.end(error=error)

    def steps(self, wait_any: Callable[[ExecPlan], Any], fallback: str) -> Steps:
        """The plan as an engine generator: yields ``wait_any(plan)`` to learn which futures
        finished, and each exhausted item's fallback call (``fallback`` names the method)."""
        try:
            while not self.finished:
                self.submit_ready()
                done = yield wait_any, (self,)
                self.check_cancel()
                for future in done:  # every item that came back is delivered before a fallback runs
                    self.completed(future)
                while self.exhausted:
                    item, error = self.exhausted.popleft()
                    clone = self.node._fresh_copy()
                    clone.cur_retry = item.attempt
                    try:
                        value = yield getattr(clone, fallback), (item.value, error)
                    except BaseException as final:
                        self.failed(item, final)
                        raise
                    self.resolved(item, value)
        except BaseException as exc:
            self.abandon(exc)
            raise
        return [self.results[index] for index in range(self.count)]


class _ThreadWaiter:
    """Blocks the calling thread until a future finishes, a retry is due, or the token cancels."""

    def __init__(self, cancel: Any) -> None:
        self.cancel = cancel
        self.woken: Future[None] = Future()  # done when the token is cancelled: wakes the wait
        if cancel is not None:
            cancel.add_callback(self._wake)

    def _wake(self, _token: object) -> None:
        if not self.woken.done():
            self.woken.set_result(None)

    def __call__(self, plan: ExecPlan) -> set[Any]:
        if plan.in_flight:
            done, _ = wait_futures(
                [*plan.in_flight, self.woken], timeout=plan.next_retry_in(), return_when=FIRST_COMPLETED
            )
            done.discard(self.woken)
            return done
        delay = plan.next_retry_in() or 0.0
        if self.cancel is not None:
            self.cancel.wait(delay)
        else:
            time.sleep(delay)
        return set()

    def close(self) -> None:
        if self.cancel is not None:
            self.cancel.remove_callback(self._wake)


class _TaskWaiter:
    """Awaits the first finished future (via ``asyncio.wrap_future``) or the next due retry; a
    cancelled task cancels the futures it waits for."""

    def __init__(self) -> None:
        self.wrapped: dict[Any, Any] = {}  # asyncio future -> executor future

    async def __call__(self, plan: ExecPlan) -> set[Any]:
        import asyncio

        waiting = set(self.wrapped.values())
        for future in plan.in_flight:
            if future not in waiting:
                self.wrapped[asyncio.wrap_future(future)] = future
        if not self.wrapped:
            await asyncio.sleep(plan.next_retry_in() or 0.0)
            return set()
        done, _ = await asyncio.wait(
            list(self.wrapped), timeout=plan.next_retry_in(), return_when=asyncio.FIRST_COMPLETED
        )
        return {self.wrapped.pop(waiter) for waiter in done}

    def close(self) -> None:
        for waiter in self.wrapped:
            waiter.cancel()


def run_on_executor(node: Any, items: list[Any], *, batch: bool) -> list[Any]:
    """Sync driver of :class:`ExecPlan`: the items' results in order, fallbacks and retries applied
    (a resumed batch node's finished items are not run again)."""
    plan = ExecPlan(node, node._run_ctx.executor, items, batch=batch)
    waiter = _ThreadWaiter(plan.cancel)
    try:
        return drive(plan.steps(waiter, "exec_fallback"))  # type: ignore[no-any-return]
    finally:
        waiter.close()


async def run_on_executor_async(node: Any, items: list[Any], *, batch: bool) -> list[Any]:
    """Async driver of :class:`ExecPlan` (the task's cancellation cancels the futures)."""
    plan = ExecPlan(node, node._run_ctx.executor, items, batch=batch)
    waiter = _TaskWaiter()
    try:
        return await drive_async(plan.steps(waiter, "exec_fallback_async"))  # type: ignore[no-any-return]
    finally:
        waiter.close()


__all__ = ["Executor", "InlineExecutor", "Outcome", "run_exec_chunk"]
