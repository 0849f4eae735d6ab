"""Generic nodes and the type aliases of KayGraph 0.3, without importing ``typing`` up front.

``Node[str, int]`` (prep result, exec result) works in annotations and as a base class, as in
0.3; it is a runtime alias only (``types.GenericAlias``), so type checkers see plain nodes.
``T_Shared``, ``T_Params``, ``T_Action``, ``T_PrepRes`` and ``T_ExecRes`` are built on first
access, so ``import kaygraph`` never loads ``typing``.

    >>> from kaygraph import Node, T_Shared
    >>> class Length(Node[str, int]):
    ...     def exec(self, text: str) -> int:
    ...         return len(text)
    >>> Length().exec("four"), T_Shared
    (4, dict[str, typing.Any])
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any

_GenericAlias: Any = type(list[int])  # types.GenericAlias, without importing types

#: The lazily built type aliases of 0.3 (see the module docstring).
ALIASES = ("T_Action", "T_ExecRes", "T_Params", "T_PrepRes", "T_Shared")


class GenericNode:
    """Mixin of every node: subscripting the class (``Node[In, Out]``) gives a generic alias."""

    __slots__ = ()

    def __class_getitem__(cls, params: Any) -> Any:
        return _GenericAlias(cls, params)


def __getattr__(name: str) -> Any:
    if name not in ALIASES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Any, TypeVar

    built = {
        "T_Shared": dict[str, Any],
        "T_Params": dict[str, Any],
        "T_Action": str | None,
        "T_PrepRes": TypeVar("T_PrepRes"),
        "T_ExecRes": TypeVar("T_ExecRes"),
    }
    globals().update(built)
    return built[name]
