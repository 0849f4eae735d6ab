"""Per-node execution context: ``get_context`` / ``set_context``, as in KayGraph 0.3.

A node's context is a small dict for timing and bookkeeping that hooks share within a step
(``before_prep`` sets, ``after_exec`` reads). It is created with the node and shared by the
copies a graph runs, so what a step stores can be read on the node after the run (0.3 did the
same): use ``shared`` for results, the context for diagnostics.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any, TypeVar

    _Self = TypeVar("_Self", bound="ExecutionContext")

_new_object = object.__new__


class ExecutionContext:
    """Mixin of every node: the ``_execution_context`` dict and its two accessors.

    The dict is made in ``__new__``, so it exists even when a subclass's ``__init__`` does its
    own thing, and a node costs one small dict more, never a step.
    """

    __slots__ = ()
    _execution_context: dict[str, Any]

    def __new__(cls: type[_Self], *args: Any, **kwargs: Any) -> _Self:
        node = _new_object(cls)
        node._execution_context = {}
        return node

    def get_context(self, key: str, default: Any = None) -> Any:
        """The context value stored under ``key``, or ``default``."""
        return self._execution_context.get(key, default)

    def set_context(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` in this node's context."""
        self._execution_context[key] = value
