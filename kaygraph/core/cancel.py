"""CancelToken: how another thread, task or process stops a run between its steps."""

from __future__ import annotations

from _thread import allocate_lock

from .exceptions import RunCancelled

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Callable


class CancelToken:
    """A thread-safe, one-way switch a run checks before each node, retry wait and batch item.

    Pass it to ``graph.run(shared, cancel=token)`` (or ``run_async``); ``token.cancel("why")``
    in any thread or task makes the run raise :class:`~kaygraph.core.exceptions.RunCancelled`. A sleeping
    retry wait wakes at once, an async run's awaited work is cancelled, thread-pool batch items
    that have not started never start. One token may serve several runs; it cannot be reset.
    """

    __slots__ = ("_callbacks", "_gate", "_lock", "cancelled", "reason")

    def __init__(self) -> None:
        #: Whether :meth:`cancel` was called (a plain attribute: runs read it before every step).
        self.cancelled = False
        # Held until cancel(): waiters block on it with a timeout. A bare lock instead of
        # threading.Event keeps `import kaygraph` from loading threading.
        self._gate = allocate_lock()
        self._gate.acquire()
        self._lock = allocate_lock()
        self._callbacks: list[Callable[[CancelToken], object]] = []
        #: What :meth:`cancel` was given (None until cancelled, or when cancelled without one).
        self.reason: str | None = None

    def cancel(self, reason: str | None = None) -> None:
        """Cancel every run using this token; later calls do nothing (the first reason stays).

        Callbacks run here, in the cancelling thread; every one is called, the first error raised.
        """
        with self._lock:
            if self.cancelled:
                return
            self.reason = reason
            self.cancelled = True
            self._gate.release()
            callbacks, self._callbacks = self._callbacks, []
        first_error: Exception | None = None
        for callback in callbacks:
            try:
                callback(self)
            except Exception as exc:
                if first_error is None:
                    first_error = exc
        if first_error is not None:
            raise first_error

    def wait(self, seconds: float | None = None) -> bool:
        """Sleep up to ``seconds`` (None: until cancelled); True as soon as the token is cancelled."""
        if self.cancelled:
            return True
        timeout = -1 if seconds is None else max(0.0, seconds)
        if self._gate.acquire(True, timeout):
            self._gate.release()  # let the other waiters through too
        return self.cancelled

    def add_callback(self, callback: Callable[[CancelToken], object]) -> None:
        """Call ``callback(token)`` once when the token is cancelled (at once if it already is)."""
        with self._lock:
            if not self.cancelled:
                self._callbacks.append(callback)
                return
        callback(self)

    def remove_callback(self, callback: Callable[[CancelToken], object]) -> None:
        """Forget a callback added with :meth:`add_callback`; unknown callbacks are ignored."""
        with self._lock:
            self._callbacks = [other for other in self._callbacks if other is not callback]

    def raise_if_cancelled(self, node_id: str | None = None, run_id: str | None = None) -> None:
        """Raise :class:`RunCancelled` naming ``node_id`` when the token was cancelled."""
        if self.cancelled:
            raise cancelled_error(self, node_id, run_id)

    def __repr__(self) -> str:
        state = f"cancelled ({self.reason!r})" if self.cancelled else "active"
        return f"<CancelToken {state}>"


def cancelled_error(token: CancelToken, node_id: str | None, run_id: str | None) -> RunCancelled:
    """The error a run raises when ``token`` stopped it at ``node_id``."""
    where = f" at node {node_id!r}" if node_id is not None else ""
    why = f": {token.reason}" if token.reason else ""
    run = f"run {run_id!r}" if run_id is not None else "run"
    return RunCancelled(
        f"{run} was cancelled{where}{why}", reason=token.reason, node_id=node_id, run_id=run_id
    )
