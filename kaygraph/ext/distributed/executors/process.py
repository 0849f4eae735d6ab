"""ProcessExecutor: worker processes on this machine (``concurrent.futures``), no cluster needed.

Good for CPU-bound items on one machine and for testing a graph meant for a cluster. Calls are
pickled with cloudpickle, so lambdas and classes defined in ``__main__`` travel too. Worker
processes start with ``forkserver`` (never ``fork``: the driver may run threads). A worker that
dies (killed, out of memory) breaks a stdlib pool for every task in it: the pool is replaced and
those tasks are resubmitted, up to ``allowed_failures`` times each, without counting as attempts
of the node.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .. import pickling, remote
from ..base import BaseExecutor, EngineFuture
from ..errors import WorkerLostError


class _Task:
    """A submitted call: waiting for a free worker, then running in the pool (``inner``)."""

    __slots__ = ("failures", "future", "inner", "payload", "refs")

    def __init__(self, payload: bytes, refs: list[Any]) -> None:
        self.payload = payload
        self.refs = refs
        self.future: EngineFuture | None = None
        self.inner: Future[bytes] | None = None
        self.failures = 0


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None


class ProcessExecutor(BaseExecutor):
    """Runs calls on ``workers`` local processes (default: the number of CPUs).

    Large inputs travel with every task (there is no object store); use Dask or Ray to send
    them once. Resources: ``CPU`` up to ``workers`` and ``memory`` up to this machine's RAM are accepted
    (nothing is reserved); anything else (``GPU``...) is an error, since a process pool has none.
    """

    engine = "process"

    def __init__(
        self,
        workers: int | None = None,
        *,
        allowed_failures: int = 3,
        start_method: str | None = None,
        **options: Any,
    ) -> None:
        # No object store to put a large input in once: it travels with each task, and the
        # counters say so (payload_bytes) instead of pretending it was shared.
        options["share_threshold"] = None
        super().__init__(**options)
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"ProcessExecutor: workers must be an int >= 1 or None, got {workers!r}")
        self._workers = workers or os.cpu_count() or 1
        self.allowed_failures = allowed_failures
        methods = multiprocessing.get_all_start_methods()
        self._method = start_method or ("forkserver" if "forkserver" in methods else "spawn")
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.RLock()
        self._waiting: deque[_Task] = deque()
        self._running = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        setup = None if self.worker_setup is None else pickling.dumps(self.worker_setup)
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context(self._method),
            initializer=remote.run_setup,
            initargs=(setup,),
        )

    def _start(self) -> None:
        self._pool = self._new_pool()

    def _stop(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
            waiting, self._waiting = list(self._waiting), deque()
        for task in waiting:
            if task.future is not None:
                task.future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _slots(self) -> int:
        return self._workers

    def _engine_lines(self) -> dict[str, str]:
        return {"address": f"local processes ({self._method})", "workers": str(self._workers)}

    def _unavailable(self, resources: Mapping[str, float]) -> str | None:
        memory = _memory_bytes()
        for name, amount in resources.items():
            if name.lower() in ("cpu", "num_cpus") and amount <= self._workers:
                continue
            if name.lower() == "memory" and (memory is None or amount <= memory):
                continue
            return (
                f"a ProcessExecutor has {self._workers} CPU(s), {memory or 'unknown'} bytes of memory "
                f"and no other resources ({name}={amount!r} cannot be met). Use a DaskExecutor or "
                "RayExecutor whose workers have them"
            )
        return None

    def _submit(self, payload: bytes, refs: list[Any], resources: Mapping[str, float] | None) -> EngineFuture:
        task = _Task(payload, refs)
        future = EngineFuture(lambda: self._cancel(task))
        task.future = future
        with self._pool_lock:
            self._waiting.append(task)
        self._dispatch()
        return future

    def _cancel(self, task: _Task) -> None:
        with self._pool_lock:
            if task in self._waiting:
                self._waiting.remove(task)
                return
        if task.inner is not None:
            task.inner.cancel()

    def _dispatch(self) -> None:
        """Hand waiting tasks to the pool while a worker is free. Tasks wait here, not in the
        pool's queue, because a task the pool has queued can no longer be cancelled."""
        while True:
            with self._pool_lock:
                if not self._waiting or self._running >= self._workers:
                    return
                task = self._waiting.popleft()
                if task.future is None or task.future.cancelled():
                    continue
                self._running += 1
            self._send(task)

    def _send(self, task: _Task) -> None:
        future = task.future
        assert future is not None
        with self._pool_lock:
            pool = self._pool
            if pool is None:
                self._running -= 1
                future.settle(error=WorkerLostError("the ProcessExecutor was closed before the task ran"))
                return
            try:
                inner = pool.submit(remote.execute, task.payload, *task.refs)
            except BrokenProcessPool:
                self._pool = pool = self._new_pool()
                inner = pool.submit(remote.execute, task.payload, *task.refs)
        task.inner = inner

        def done(inner: Future[bytes]) -> None:
            error = None if inner.cancelled() else inner.exception()
            if isinstance(error, BrokenProcessPool):
                self._replace_pool(pool)
                task.failures += 1
                if task.failures < self.allowed_failures and not future.cancelled():
                    self._send(task)  # keeps its worker slot
                    return
                error = WorkerLostError(
                    f"a worker process died while running this task, {task.failures} time(s) "
                    f"(allowed_failures={self.allowed_failures}): {error}"
                )
            with self._pool_lock:
                self._running -= 1
            if inner.cancelled():
                future.cancel()
            elif error is not None:
                future.settle(error=error)
            else:
                future.settle(inner.result())
            self._dispatch()

        inner.add_done_callback(done)

    def _replace_pool(self, broken: ProcessPoolExecutor) -> None:
        """Swap in a fresh pool once per breakage (many tasks report the same broken pool)."""
        with self._pool_lock:
            if self._pool is broken:
                self._pool = self._new_pool()
        broken.shutdown(wait=False, cancel_futures=True)


__all__ = ["ProcessExecutor"]
