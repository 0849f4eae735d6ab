"""Node: a BaseNode whose ``exec`` is retried, with a wait between attempts and a fallback."""

from __future__ import annotations

import time

from .base_node import BaseNode
from .engine import attempts, drive
from .exceptions import GraphDefinitionError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any


def _check_retry_settings(owner: str, max_retries: Any, wait: Any) -> None:
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 1:
        raise GraphDefinitionError(
            f"{owner}: max_retries must be an int >= 1 (the number of attempts), got {max_retries!r}"
        )
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        raise GraphDefinitionError(f"{owner}: wait must be a number of seconds >= 0, got {wait!r}")


class Node(BaseNode):
    """A node whose ``exec`` is attempted up to ``max_retries`` times, ``wait`` seconds apart.

    When every attempt failed, ``exec_fallback(prep_res, exc)`` decides: return a value to carry
    on, or raise (the default re-raises the last error). ``self.cur_retry`` is the 0-based attempt.

    Set ``remote = True`` on a class to run its ``exec`` on the run's executor (``run(executor=)``,
    see :mod:`kaygraph.core.executor`); ``resources`` (e.g. ``{"GPU": 1}``) and ``chunk_size``
    are passed on to executors that use them. Retries and the fallback stay in the caller.
    """

    #: Run ``exec`` on the run's executor, when it has one.
    remote = False
    #: What one ``exec`` needs, for executors with ``supports_resources`` (e.g. ``{"GPU": 1}``).
    resources: dict[str, float] | None = None
    #: Batch items per executor submit; None: the executor's ``chunk_size(n)``, else 1.
    chunk_size: int | None = None

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        node_id: str | None = None,
        config: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(node_id, config, **kwargs)
        _check_retry_settings(type(self).__name__, max_retries, wait)
        self.max_retries = max_retries
        self.wait = wait
        self.cur_retry = 0

    def exec_fallback(self, prep_res: Any, exc: Exception) -> Any:
        """Called when the last attempt failed; re-raise by default."""
        raise exc

    def _exec(self, prep_res: Any) -> Any:
        if self.remote and self._on_executor():
            from .executor import run_on_executor

            return run_on_executor(self, [prep_res], batch=False)[0]
        if self.max_retries == 1:  # the common case, without the engine's retry loop
            self.cur_retry = 0
            try:
                return self.exec(prep_res)
            except Exception as exc:
                return drive(attempts(self, prep_res, self.exec, self.exec_fallback, self._sleep, exc))
        return drive(attempts(self, prep_res, self.exec, self.exec_fallback, self._sleep))

    def _sleep(self, seconds: float) -> None:
        """The wait before a retry; a cancelled run wakes at once (the engine then stops it)."""
        ctx = self._run_ctx
        if ctx is not None and ctx.cancel is not None:
            ctx.cancel.wait(seconds)
        else:
            time.sleep(seconds)
