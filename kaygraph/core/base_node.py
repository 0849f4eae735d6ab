"""BaseNode: the prep -> exec -> post lifecycle and the edges that connect nodes."""

from __future__ import annotations

import warnings

from .context import ExecutionContext
from .exceptions import GraphDefinitionError, InvalidActionError
from .generics import GenericNode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any, TypeVar

    _Node = TypeVar("_Node", bound="BaseNode")

    from .events import Path, RunContext

_new_object = object.__new__

#: Bumped whenever an edge or a start node changes, so graphs know their cached ids are stale.
_topology_version = 0


def _topology_changed() -> None:
    global _topology_version
    _topology_version += 1


def _add_note(exc: BaseException, note: str) -> None:
    """PEP 678 note, also on Python 3.10 (which stores but does not print ``__notes__``)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        try:
            exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]
        except AttributeError:
            pass


#: Lifecycle hooks and how many arguments each takes, self included.
_HOOK_ARITY = {"before_prep": 2, "after_exec": 4, "on_error": 3}
_HOOK_SIGNATURES = {
    "before_prep": "before_prep(self, shared)",
    "after_exec": "after_exec(self, shared, prep_res, exec_res)",
    "on_error": "on_error(self, shared, error)",
}
_VARARGS = 0x04
_COROUTINE = 0x80


def _hook_problem(cls: type, impl: Any, arity: int) -> str | None:
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


def _copy_with_copy_module(node: Any) -> Any:
    """Per-step copy for nodes that define ``__copy__`` or ``__slots__``: what PocketFlow did."""
    import copy

    return copy.copy(node)


def _needs_copy_module(cls: type) -> bool:
    for klass in cls.__mro__:
        if klass is object:
            continue
        if "__copy__" in vars(klass):
            return True
        slots = vars(klass).get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        if any(slot not in ("__dict__", "__weakref__") for slot in slots):
            return True
    return False


class BaseNode(ExecutionContext, GenericNode):
    """A step of a graph: ``prep`` reads the shared store, ``exec`` computes, ``post`` writes back
    and returns the action that selects the next node (``None`` means ``"default"``).

    A node is a template: each time a graph reaches it, the graph runs a shallow copy, so
    attributes set during one step never leak into another run of the same graph.
    """

    # Per-step state lives on the copy; these class attributes are the defaults of a bare node.
    _run_ctx: RunContext | None = None
    _kg_path: Path = ()
    _kg_done_items: dict[int, Any] | None = None
    _kg_batch_size: int | None = None
    _explicit_id: str | None = None
    _node_id: str | None = None
    _has_hooks = False
    _hooks_enabled: frozenset[str] = frozenset()
    _kg_in_graph = False  # set once a graph assigned this node an id: its edges now matter
    _kg_ambiguous_id = False  # shared by graphs that gave it different ids
    _kg_attempt = 0  # the attempt a copy shipped to an executor makes (see core/executor.py)

    def __init__(self, *, node_id: str | None = None) -> None:
        self.params: dict[str, Any] = {}
        self.successors: dict[str, BaseNode] = {}
        if node_id is not None:
            if not isinstance(node_id, str) or not node_id:
                raise GraphDefinitionError(
                    f"node_id must be a non-empty string, got {node_id!r} for {type(self).__name__}"
                )
            self._explicit_id = node_id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        enabled = []
        for hook, arity in _HOOK_ARITY.items():
            impl = getattr(cls, hook)
            if impl is getattr(BaseNode, hook):
                continue
            problem = _hook_problem(cls, impl, arity)
            if problem is None:
                enabled.append(hook)
            elif hook in vars(cls):
                warnings.warn(
                    f"{cls.__qualname__}.{hook} {problem}, but KayGraph calls "
                    f"{_HOOK_SIGNATURES[hook]} as a lifecycle hook; it will not be called as one. "
                    "Rename it if it is not meant as a hook.",
                    stacklevel=2,
                )
        cls._hooks_enabled = frozenset(enabled)
        cls._has_hooks = bool(enabled)
        if _needs_copy_module(cls):
            cls._fresh_copy = _copy_with_copy_module  # type: ignore[method-assign,assignment]

    # -- identity ---------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """Stable id: the explicit ``node_id=``, else the one the graph derived (class name, de-duplicated
        in graph order), else the class name. The same graph built in two processes gets the same ids."""
        return self._explicit_id or self._node_id or type(self).__name__

    @node_id.setter
    def node_id(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise GraphDefinitionError(
                f"node_id must be a non-empty string, got {value!r} for {type(self).__name__}"
            )
        self._explicit_id = value
        _topology_changed()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.node_id!r}>"

    # -- lifecycle (override these) -----------------------------------------------------------

    def prep(self, shared: Any) -> Any:
        """Read what ``exec`` needs from the shared store."""

    def exec(self, prep_res: Any) -> Any:
        """Do the work. Must not touch the shared store, so it can be retried safely."""

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        """Write results to the shared store and return the next action (a string, or None)."""

    def before_prep(self, shared: Any) -> None:
        """Hook: runs before ``prep`` on every step (e.g. to open a per-step resource)."""

    def after_exec(self, shared: Any, prep_res: Any, exec_res: Any) -> None:
        """Hook: runs after ``exec`` succeeded (or fell back), before ``post``."""

    def on_error(self, shared: Any, error: BaseException) -> None:
        """Hook: the step failed with ``error``; the error propagates after this returns."""

    def setup_resources(self) -> None:
        """Acquire long-lived resources; called by ``with node:``."""

    def cleanup_resources(self) -> None:
        """Release what :meth:`setup_resources` acquired; called when the ``with`` block ends."""

    def __enter__(self: _Node) -> _Node:
        self.setup_resources()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup_resources()

    # -- wiring -------------------------------------------------------------------------------

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def next(self, node: BaseNode, action: str = "default") -> BaseNode:
        """Connect ``node`` as the successor for ``action``; returns ``node`` so calls chain."""
        if not isinstance(action, str):
            raise InvalidActionError(
                f"action must be a string, got {action!r} ({type(action).__name__}) "
                f"on {type(self).__name__}.next(); write node - \"action\" >> other"
            )
        if not isinstance(node, BaseNode):
            raise GraphDefinitionError(
                f"cannot connect {type(self).__name__} to {node!r}: successors must be nodes "
                "or graphs (instances of kaygraph.BaseNode)"
            )
        if action in self.successors:
            warnings.warn(f"Overwriting successor for action '{action}'", stacklevel=2)
        self.successors[action] = node
        if self._kg_in_graph:  # edges between fresh nodes cannot stale any graph's cached ids
            _topology_changed()
        return node

    def __rshift__(self, other: BaseNode) -> BaseNode:
        return self.next(other)

    def __sub__(self, action: str) -> _ConditionalTransition:
        if isinstance(action, str):
            return _ConditionalTransition(self, action)
        raise InvalidActionError(
            f"action must be a string, got {action!r} ({type(action).__name__}); "
            "write node - \"action\" >> other"
        )

    # -- running ------------------------------------------------------------------------------

    def run(self, shared: Any) -> Any:
        """Run this node alone (successors are not followed: put it in a Graph for that)."""
        if self.successors:
            warnings.warn("Node won't run successors. Use Graph.", stacklevel=2)
        return self._run(shared)

    def _fresh_copy(self: _Node) -> _Node:
        """A shallow copy made for one step: what ``copy.copy`` does, several times faster."""
        clone: _Node = _new_object(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def _exec(self, prep_res: Any) -> Any:
        return self.exec(prep_res)

    def _on_executor(self) -> bool:
        """Whether this step's run has an executor (``run(executor=)``)."""
        ctx = self._run_ctx
        return ctx is not None and ctx.executor is not None

    def _check_cancel(self) -> None:
        """Raise ``RunCancelled`` naming this node when the run's token was cancelled."""
        ctx = self._run_ctx
        if ctx is not None and ctx.cancel is not None and ctx.cancel.cancelled:
            from .cancel import cancelled_error

            raise cancelled_error(ctx.cancel, self.node_id, ctx.run_id)

    def _run(self, shared: Any) -> Any:
        if self._has_hooks:
            return self._run_with_hooks(shared)
        prep_res = self.prep(shared)
        return self.post(shared, prep_res, self._exec(prep_res))

    def _run_with_hooks(self, shared: Any) -> Any:
        enabled = self._hooks_enabled
        try:
            if "before_prep" in enabled:
                self.before_prep(shared)
            prep_res = self._hooked_prep(shared)
            exec_res = self._hooked_exec(shared, prep_res)
            if "after_exec" in enabled:
                self.after_exec(shared, prep_res, exec_res)
            return self.post(shared, prep_res, exec_res)
        except Exception as exc:
            if "on_error" in enabled:
                self.on_error(shared, exc)
            raise

    def _hooked_prep(self, shared: Any) -> Any:
        return self.prep(shared)

    def _hooked_exec(self, shared: Any, prep_res: Any) -> Any:
        """The work between ``prep`` and ``post`` (a graph runs its nodes here)."""
        return self._exec(prep_res)


class _ConditionalTransition:
    """The half-built edge ``node - "action"``, completed by ``>> target``."""

    __slots__ = ("action", "source")

    def __init__(self, source: BaseNode, action: str) -> None:
        self.source = source
        self.action = action

    def __rshift__(self, target: BaseNode) -> BaseNode:
        return self.source.next(target, self.action)
