"""The core seams the scheduler uses (graph references, cancellation), from ``kaygraph`` itself.

Until the core ships them (issue 8), minimal stand-ins with the same contract are used, so the
scheduler runs on either; delete the fallbacks once ``kaygraph.load_graph`` exists everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

try:
    from kaygraph import CancelToken, load_graph  # type: ignore[attr-defined]
    from kaygraph.core.exceptions import GraphReferenceError, RunCancelled  # type: ignore[attr-defined]
except ImportError:  # the core seams have not landed yet
    import importlib

    from kaygraph.core.exceptions import KayGraphError

    class GraphReferenceError(KayGraphError, ImportError):  # type: ignore[no-redef]
        """A ``"package.module:attr"`` reference that does not lead to a graph."""

    class RunCancelled(KayGraphError):  # type: ignore[no-redef]
        """A run stopped because its cancel token was cancelled."""

        def __init__(self, message: str, *, reason: str | None = None) -> None:
            super().__init__(message)
            self.reason = reason

    class CancelToken:  # type: ignore[no-redef]
        """Thread-safe, idempotent cancellation flag."""

        def __init__(self) -> None:
            self._event = threading.Event()
            self.reason: str | None = None
            self._callbacks: list[Callable[[Any], None]] = []

        @property
        def cancelled(self) -> bool:
            return self._event.is_set()

        def cancel(self, reason: str = "cancelled") -> None:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            for callback in self._callbacks:
                callback(self)

        def wait(self, seconds: float | None) -> bool:
            return self._event.wait(seconds)

        def add_callback(self, callback: Callable[[Any], None]) -> None:
            self._callbacks.append(callback)
            if self._event.is_set():
                callback(self)

    def load_graph(ref: str) -> Any:  # type: ignore[no-redef]
        """The graph named by ``"package.module:attr"`` (a Graph or a zero-argument factory)."""
        from kaygraph.core.graph import Graph

        module_name, _, attr = str(ref).partition(":")
        if not module_name or not attr:
            raise GraphReferenceError(f"graph reference {ref!r} must look like 'package.module:attr'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise GraphReferenceError(
                f"graph reference {ref!r}: importing module {module_name!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        target: Any = module
        for part in attr.split("."):
            if not hasattr(target, part):
                raise GraphReferenceError(
                    f"graph reference {ref!r}: module {module_name!r} has no attribute {attr!r}"
                )
            target = getattr(target, part)
        if not isinstance(target, Graph) and callable(target):
            target = target()
        if not isinstance(target, Graph):
            raise GraphReferenceError(
                f"graph reference {ref!r} is a {type(target).__name__}, "
                "not a Graph or a factory returning one"
            )
        return target


__all__ = ["CancelToken", "GraphReferenceError", "RunCancelled", "load_graph"]
