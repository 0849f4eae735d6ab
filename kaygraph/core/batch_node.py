"""Batch variants: a node that maps ``exec`` over items, in order or on threads, and a graph run
once per parameter set."""

from __future__ import annotations

import time

from .base_node import BaseNode
from .events import RunContext
from .exceptions import GraphDefinitionError, GraphExecutionError
from .graph import Graph, _batch_prefix
from .node import Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any




def _listening(node: BaseNode) -> bool:
    ctx = node._run_ctx
    return ctx is not None and bool(ctx.listeners)


def _item_started(node: BaseNode, index: int, item: Any) -> float:
    ctx = node._run_ctx
    assert ctx is not None
    ctx.emit(
        "on_batch_item_start",
        node=node,
        node_id=node.node_id,
        path=node._kg_path,
        index=index,
        item=item,
        size=node._kg_batch_size,
    )
    return time.perf_counter()


def _item_ended(
    node: BaseNode, index: int, started: float, *, result: Any = None, error: BaseException | None = None
) -> None:
    """Report the end of item ``index``; while ``error`` propagates, a failing listener cannot replace it."""
    ctx = node._run_ctx
    assert ctx is not None
    fields = {
        "node": node,
        "node_id": node.node_id,
        "path": node._kg_path,
        "index": index,
        "result": result,
        "error": error,
        "duration": time.perf_counter() - started,
    }
    if error is None:
        ctx.emit("on_batch_item_end", **fields)
    else:
        ctx.emit_after_error("on_batch_item_end", error, **fields)


def _plain(node: BaseNode) -> bool:
    """Whether the node runs with no listener, cancel token or executor (its fastest path)."""
    ctx = node._run_ctx
    return ctx is None or ctx.plain


def _exec_on_executor(node: Any, items: list[Any], done: dict[int, Any]) -> list[Any]:
    from .executor import run_on_executor

    todo = [(index, item) for index, item in enumerate(items) if index not in done]
    results = run_on_executor(node, todo, batch=True) if todo else {}
    return [done[index] if index in done else results[index] for index in range(len(items))]


def _size_of(items: Any) -> int | None:
    return len(items) if hasattr(items, "__len__") else None


def _check_workers(owner: str, name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise GraphDefinitionError(f"{owner}: {name} must be an int >= 1 or None, got {value!r}")


class BatchNode(Node):
    """``prep`` returns an iterable; ``exec`` runs once per item (with retries per item) and
    ``post`` receives the list of results in item order."""

    def _exec(self, items: Any) -> Any:
        if self._kg_done_items is None and _plain(self):
            return [super(BatchNode, self)._exec(item) for item in (items or [])]
        done = self._kg_done_items or {}
        items = list(items or [])
        self._kg_batch_size = len(items)
        if self._on_executor():
            return _exec_on_executor(self, items, done)
        results = []
        for index, item in enumerate(items):
            if index in done:
                results.append(done[index])
                continue
            self._check_cancel()
            results.append(self._exec_item(index, item))
        return results

    def _exec_item(self, index: int, item: Any) -> Any:
        """One item with its retries, reported to listeners (persistence checkpoints it)."""
        if not _listening(self):
            return super()._exec(item)
        started = time.perf_counter()
        try:
            started = _item_started(self, index, item)
            result = super()._exec(item)
        except BaseException as exc:  # cancellation too: listeners must close the item
            _item_ended(self, index, started, error=exc)
            raise
        _item_ended(self, index, started, result=result)
        return result


class ParallelBatchNode(BatchNode):
    """A BatchNode whose items run on a thread pool (``max_workers`` threads; None: Python's default).

    For I/O-bound work such as LLM calls. Results keep item order; the first failure cancels the
    items not yet started and propagates. Each item runs on its own copy of the node, so
    ``cur_retry`` and attributes set in ``exec`` never race.
    """

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        *,
        max_workers: int | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(max_retries, wait, node_id=node_id)
        _check_workers(type(self).__name__, "max_workers", max_workers)
        self.max_workers = max_workers

    def _exec(self, items: Any) -> Any:
        items = list(items or [])
        self._kg_batch_size = len(items)
        done = self._kg_done_items or {}
        todo = [index for index in range(len(items)) if index not in done]
        results: list[Any] = [done.get(index) for index in range(len(items))]
        if not todo:
            return results
        if self._on_executor():
            return _exec_on_executor(self, items, done)
        import contextvars
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        def run_item(index: int) -> Any:
            self._check_cancel()  # an item that starts after a cancel never runs
            return self._fresh_copy()._exec_item(index, items[index])

        ctx = self._run_ctx
        cancel = None if ctx is None else ctx.cancel
        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="kaygraph")
        futures: dict[Any, int] = {}

        def stop_pending(_token: object) -> None:
            for future in list(futures):
                future.cancel()

        if cancel is not None:
            cancel.add_callback(stop_pending)
        try:
            for index in todo:
                futures[pool.submit(contextvars.copy_context().run, run_item, index)] = index
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            self._check_cancel()
            for future in finished:
                if future.exception() is not None:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise future.exception()  # type: ignore[misc]
            for future, index in futures.items():
                results[index] = future.result()
        finally:
            if cancel is not None:
                cancel.remove_callback(stop_pending)
            pool.shutdown(wait=True, cancel_futures=True)
        return results


class BatchGraph(Graph):
    """Runs its graph once per parameter set: ``prep`` returns a list of dicts, each merged over the
    graph's params for one pass. ``post`` receives that list and None."""

    def _run(self, shared: Any) -> Any:
        if self._has_hooks:
            return self._run_with_hooks(shared)
        param_sets = self.prep(shared) or []
        self._run_param_sets(shared, param_sets)
        return self.post(shared, param_sets, None)

    def _hooked_prep(self, shared: Any) -> Any:
        return self.prep(shared) or []

    def _hooked_exec(self, shared: Any, prep_res: Any) -> Any:
        self._run_param_sets(shared, prep_res)

    def _run_param_sets(self, shared: Any, param_sets: Any) -> None:
        self._kg_batch_size = _size_of(param_sets)
        ctx = self._run_ctx or RunContext(self)
        skip_below, done, resuming = _batch_resume(self, ctx)
        count = 0
        for index, batch_params in enumerate(param_sets):
            count = index + 1
            if index < skip_below or index in done:
                continue
            self._check_cancel()
            self._run_param_set(shared, index, batch_params)
        if resuming and skip_below >= count:
            _missing_param_set(self, ctx, skip_below, count)

    def _run_param_set(self, shared: Any, index: int, batch_params: dict[str, Any]) -> None:
        params = {**self.params, **batch_params}
        if not _listening(self):
            self._orch(shared, params)
            return
        started = time.perf_counter()
        token = _batch_prefix.set((self, (*self._kg_path, index)))
        try:
            started = _item_started(self, index, batch_params)
            self._orch(shared, params)
        except BaseException as exc:  # cancellation too: listeners must close the item
            _item_ended(self, index, started, error=exc)
            raise
        finally:
            _batch_prefix.reset(token)
        _item_ended(self, index, started, result=None)


def _batch_resume(
    graph: Graph, ctx: RunContext, *, parallel: bool = False
) -> tuple[int, dict[int, Any], bool]:
    """For a batch graph being resumed: the first parameter set to run, the ones already done, and
    whether the resume path named a set (which must then exist)."""
    done = graph._kg_done_items or {}
    resume = ctx.resume
    if resume is None:
        return 0, done, False
    if parallel:
        graph._bad_resume(
            ctx,
            resume,
            f"{type(graph).__name__} runs its parameter sets concurrently, so it resumes only as a "
            "whole, with the finished set indices as completed_items",
        )
    index, is_last = resume.take()
    if not isinstance(index, int) or isinstance(index, bool):
        graph._bad_resume(ctx, resume, f"expected a parameter-set index for batch graph, got {index!r}")
    if is_last:
        ctx.resume = None
    assert isinstance(index, int)
    return index, done, True


def _missing_param_set(graph: Graph, ctx: RunContext, index: int, count: int) -> None:
    raise GraphExecutionError(
        f"cannot resume run {ctx.run_id!r} at parameter set {index} of batch graph {graph.name!r}: "
        f"its prep returned {count} set(s) this time. prep must return the same sets when a run "
        "resumes; restore them or start a new run.",
        graph=graph.name,
    )
