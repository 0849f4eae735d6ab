"""Batch variants: a node that maps ``exec`` over items, in order or on threads, and a graph run
once per parameter set."""

from __future__ import annotations

from .base_node import check_count
from .engine import batch_items, drive, one_item, param_sets
from .graph import Graph
from .node import Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any


class BatchNode(Node):
    """``prep`` returns an iterable; ``exec`` runs once per item (with retries per item) and
    ``post`` receives the list of results in item order."""

    def _exec(self, items: Any) -> Any:
        items = list(items or [])
        self._kg_batch_size = len(items)
        if self._on_executor():
            from .executor import run_on_executor

            return run_on_executor(self, items, batch=True)
        return self._exec_items(items)

    def _exec_items(self, items: list[Any]) -> Any:
        """Each item's ``exec`` with its retries, in order, here (not on an executor)."""
        run, ctx = super()._exec, self._run_ctx
        if self._kg_done_items is None and (ctx is None or ctx.plain):  # the fastest path
            return [run(item) for item in items]
        return drive(batch_items(self, items, run))


class ParallelBatchNode(BatchNode):
    """A BatchNode whose items run on a thread pool (``max_workers`` threads; None: Python's default).

    For I/O-bound work such as LLM calls. Results keep item order; the first failure cancels the
    items not yet started and propagates. Each item runs on its own copy of the node, so
    ``cur_retry`` and attributes set in ``exec`` never race. ``ParallelBatchNode(4)`` means four
    workers, as in KayGraph 0.3; the other arguments are Node's.
    """

    def __init__(self, max_workers: int | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_count(type(self).__name__, "max_workers", max_workers)
        self.max_workers = max_workers

    def _exec_items(self, items: list[Any]) -> Any:
        done = self._kg_done_items or {}
        todo = [index for index in range(len(items)) if index not in done]
        results: list[Any] = [done.get(index) for index in range(len(items))]
        if not todo:
            return results
        import contextvars
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        def run_item(index: int) -> Any:
            self._check_cancel()  # an item that starts after a cancel never runs its exec
            clone = self._fresh_copy()
            return drive(one_item(clone, index, items[index], super(BatchNode, clone)._exec, (items[index],)))

        pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="kaygraph")
        try:
            futures = {pool.submit(contextvars.copy_context().run, run_item, index): index for index in todo}
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            self._check_cancel()
            for future in finished:
                if future.exception() is not None:  # the pool is shut down before it propagates
                    raise future.exception()  # type: ignore[misc]
            for future, index in futures.items():
                results[index] = future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results


class BatchGraph(Graph):
    """Runs its graph once per parameter set: ``prep`` returns a list of dicts, each merged over the
    graph's params for one pass. ``post`` receives that list and None."""

    def _hooked_prep(self, shared: Any) -> Any:
        return self.prep(shared) or []

    def _hooked_exec(self, shared: Any, prep_res: Any) -> Any:
        drive(param_sets(self, shared, prep_res, self._orch))
