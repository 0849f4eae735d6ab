"""Checks made once, when a node class is created: hooks with the wrong shape, near-miss lifecycle
names (``exce``, ``psot``, ``prep_asnyc``), coroutine methods on sync nodes, and async nodes that
define only sync methods. Each becomes a warning pointing at the user's method (or, for a
coroutine on a sync node, a clear error when the node runs)."""

from __future__ import annotations

import warnings

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any

#: Lifecycle hooks and how many arguments each takes, self included.
HOOK_ARITY = {"before_prep": 2, "after_exec": 4, "on_error": 3}
_HOOK_SIGNATURES = {
    "before_prep": "before_prep(self, shared)",
    "after_exec": "after_exec(self, shared, prep_res, exec_res)",
    "on_error": "on_error(self, shared, error)",
}
#: Every method name KayGraph calls on a node: a user method one typo away from one is a bug.
LIFECYCLE = (
    "prep",
    "exec",
    "post",
    "exec_fallback",
    "prep_async",
    "exec_async",
    "post_async",
    "exec_fallback_async",
    *HOOK_ARITY,
    "setup_resources",
    "cleanup_resources",
    "validate_input",
    "validate_output",
)
_SYNC_TO_ASYNC = {"prep": "prep_async", "exec": "exec_async", "post": "post_async"}
_VARARGS = 0x04
_COROUTINE = 0x80 | 0x200  # async def, async generator


def _is_ours(klass: type) -> bool:
    return klass.__module__ == "kaygraph" or klass.__module__.startswith("kaygraph.")


def _warn_at(message: str, function: Any, cls: type) -> None:
    """Warn at the user's method (its file and line), not at the framework."""
    code = getattr(function, "__code__", None)
    if code is None:
        warnings.warn(message, UserWarning, stacklevel=4)
        return
    warnings.warn_explicit(message, UserWarning, code.co_filename, code.co_firstlineno, module=cls.__module__)


def hook_problem(cls: type, impl: Any, arity: int) -> str | None:
    """Why ``impl`` cannot serve as a hook taking ``arity`` arguments (self included), or None."""
    if not callable(impl):
        return f"is {type(impl).__name__} {impl!r}, not a method"
    code = getattr(impl, "__code__", None)
    if code is None:
        return None  # a callable object: trust it
    if code.co_flags & _COROUTINE and not getattr(cls, "_kg_async_hooks", False):
        return "is a coroutine function (only AsyncNode awaits hooks)"
    if code.co_flags & _VARARGS:
        return None
    required = code.co_argcount - len(getattr(impl, "__defaults__", None) or ())
    if required <= arity <= code.co_argcount:
        return None
    return f"takes {code.co_argcount - 1} argument(s)"


def enabled_hooks(cls: type, base: type) -> frozenset[str]:
    """The hooks ``cls`` overrides with a usable signature; warns about the unusable ones."""
    enabled = []
    for hook, arity in HOOK_ARITY.items():
        impl = getattr(cls, hook)
        if impl is getattr(base, hook):
            continue
        problem = hook_problem(cls, impl, arity)
        if problem is None:
            enabled.append(hook)
        elif hook in vars(cls):
            _warn_at(
                f"{cls.__qualname__}.{hook} {problem}, but KayGraph calls "
                f"{_HOOK_SIGNATURES[hook]} as a lifecycle hook; it will not be called as one. "
                "Rename it if it is not meant as a hook.",
                impl,
                cls,
            )
    return frozenset(enabled)


def warn_near_misses(cls: type) -> None:
    """Warn about methods of ``cls`` named one typo away from a lifecycle method (``exce``)."""
    if _is_ours(cls):
        return
    for name, value in vars(cls).items():
        if name.startswith("_") or name in LIFECYCLE or not callable(value):
            continue
        if any(hasattr(klass, name) for klass in cls.__mro__[1:] if _is_ours(klass)):
            continue  # a framework attribute overridden on purpose (run, set_params, ...)
        letters = set(name)
        if not any(
            abs(len(name) - len(known)) <= 2 and len(letters ^ set(known)) <= 2 for known in LIFECYCLE
        ):
            continue  # far from every lifecycle name: no need to load difflib
        import difflib

        close = difflib.get_close_matches(name, LIFECYCLE, n=1, cutoff=0.75)
        if close:
            match = close[0]
            _warn_at(
                f"{cls.__name__}.{name} looks like a misspelling of the lifecycle method "
                f"{match!r}: KayGraph never calls {name!r}, so the default {match} runs instead. "
                f"Rename it to {match!r} (or, if it is a helper, give it a name further from {match!r}).",
                value,
                cls,
            )


def coroutine_method(cls: type) -> str | None:
    """The sync lifecycle method a sync node class defines with ``async def`` (never awaited), if any."""
    if getattr(cls, "_kg_async_hooks", False):
        return None
    for name in ("prep", "exec", "post", "exec_fallback"):
        code = getattr(getattr(cls, name, None), "__code__", None)
        if code is not None and code.co_flags & _COROUTINE:
            return name
    return None


def warn_sync_methods_on_async_node(cls: type) -> None:
    """An AsyncNode runs ``prep_async``/``exec_async``/``post_async``: warn when a user class defines
    the sync name but no async twin, since its method would never run."""
    if _is_ours(cls) or not getattr(cls, "_kg_async_hooks", False):
        return
    user_classes = [klass for klass in cls.__mro__ if not _is_ours(klass)]
    for sync_name, async_name in _SYNC_TO_ASYNC.items():
        if sync_name not in vars(cls):
            continue
        if any(async_name in vars(klass) for klass in user_classes):
            continue
        _warn_at(
            f"{cls.__name__} is an AsyncNode but defines {sync_name}() and not {async_name}(): "
            f"an AsyncNode runs {async_name}, so {sync_name} is never called. Rename it to "
            f"`async def {async_name}` (or subclass kaygraph.Node for a sync node).",
            vars(cls)[sync_name],
            cls,
        )
