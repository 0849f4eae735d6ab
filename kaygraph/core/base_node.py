"""BaseNode: the prep -> exec -> post lifecycle and the edges that connect nodes."""

from __future__ import annotations

import warnings

from . import checks
from .cancel import cancelled_error
from .context import ExecutionContext
from .engine import drive, lifecycle
from .exceptions import GraphDefinitionError, InvalidActionError, NodeExecutionError
from .generics import GenericNode
from .log import LoggerAttribute
from .node_config import Config

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


def _copy_with_copy_module(node: Any) -> Any:
    """Per-step copy for nodes that define ``__copy__`` or ``__slots__``: what PocketFlow did."""
    import copy

    return copy.copy(node)


def _needs_copy_module(cls: type) -> bool:
    for klass in cls.__mro__[:-1]:  # not object
        slots = vars(klass).get("__slots__", ())
        slots = (slots,) if isinstance(slots, str) else slots
        if "__copy__" in vars(klass) or any(slot not in ("__dict__", "__weakref__") for slot in slots):
            return True
    return False


class _EmptyConfig:
    """``node.config`` of a node given none: an empty :class:`kaygraph.Config`, made on first use
    (so ``self.config.get(key, default)`` always works, and unconfigured nodes stay small)."""

    def __get__(self, node: Any, owner: type) -> Any:
        if node is None:
            return self
        config = node.__dict__["config"] = Config()
        return config


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
    _kg_async_hooks = False  # AsyncNode: its lifecycle is awaited (and its hooks may be async)

    #: The node configuration (:class:`kaygraph.Config`, or any object given as ``config=``); a
    #: graph with a config hands it to each of its nodes whose own is empty.
    config: Any = _EmptyConfig()
    #: ``logging.getLogger(<class name>)``, created on first use.
    logger = LoggerAttribute()

    def __init__(self, node_id: str | None = None, config: Any = None, **kwargs: Any) -> None:
        if kwargs and not _mixin_takes_keywords(type(self)):
            _unexpected_keywords(self, kwargs)
        super().__init__(**kwargs)  # cooperative: mixins later in the MRO get their keywords
        self.params: dict[str, Any] = {}
        self.successors: dict[str, BaseNode] = {}
        if config is not None:
            self.config = config
        if node_id is not None and node_id != "":  # "" means no id, as in 0.3
            _check_node_id(node_id, self)
            self._explicit_id = node_id

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._hooks_enabled = checks.enabled_hooks(cls, BaseNode)
        cls._has_hooks = bool(cls._hooks_enabled)
        if _needs_copy_module(cls):
            cls._fresh_copy = _copy_with_copy_module  # type: ignore[method-assign,assignment]
        checks.warn_near_misses(cls)
        checks.warn_sync_methods_on_async_node(cls)
        coroutine = checks.coroutine_method(cls)
        if coroutine is not None:
            cls._run = _refuse_coroutine(coroutine)  # type: ignore[method-assign]

    # -- identity ---------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """Stable id: the explicit ``node_id=``, else the one the graph derived (class name, de-duplicated
        in graph order), else the class name. The same graph built in two processes gets the same ids."""
        return self._explicit_id or self._node_id or type(self).__name__

    @node_id.setter
    def node_id(self, value: str) -> None:
        _check_node_id(value, self)
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

    def on_error(self, shared: Any, error: BaseException) -> bool | None:
        """Hook: the step failed with ``error``. Return True to suppress it (the step then returns
        None and the graph follows the default edge, as in 0.3); otherwise it propagates."""
        return None

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
        """A shallow copy made for one step: what ``copy.copy`` does, several times faster (assigning
        a dict copy is a block copy; filling a new instance's dict was ~40% of a plain step)."""
        clone: _Node = _new_object(type(self))
        clone.__dict__ = self.__dict__.copy()
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
            raise cancelled_error(ctx.cancel, self.node_id, ctx.run_id)

    def _run(self, shared: Any) -> Any:
        if self._has_hooks:
            return drive(lifecycle(self, shared, self._hooked_prep, self._hooked_exec, self.post))
        prep_res = self.prep(shared)
        return self.post(shared, prep_res, self._exec(prep_res))

    def _hooked_prep(self, shared: Any) -> Any:
        return self.prep(shared)

    def _hooked_exec(self, shared: Any, prep_res: Any) -> Any:
        """The work between ``prep`` and ``post`` (a graph runs its nodes here)."""
        return self._exec(prep_res)


#: Keyword arguments of the node and graph constructors, for "did you mean" on a typo.
_KNOWN_KEYWORDS = ("max_retries", "wait", "node_id", "config", "max_workers", "max_concurrency",
                   "start", "name", "max_steps", "collect_metrics")


def _mixin_takes_keywords(cls: type) -> bool:
    """Whether a class after BaseNode in the MRO has an ``__init__`` that could take keywords."""
    mro = cls.__mro__
    return any("__init__" in vars(klass) for klass in mro[mro.index(BaseNode) + 1 : -1])


def _unexpected_keywords(node: BaseNode, kwargs: dict[str, Any]) -> None:
    import difflib

    name = next(iter(kwargs))
    close = difflib.get_close_matches(name, _KNOWN_KEYWORDS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise TypeError(f"{type(node).__name__}() got an unexpected keyword argument {name!r}.{hint}")


def check_count(owner: str, name: str, value: Any) -> None:
    """Reject a ``max_steps`` / ``max_workers`` / ``max_concurrency`` that is not an int >= 1 or None."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise GraphDefinitionError(f"{owner}: {name} must be an int >= 1 or None, got {value!r}")


def _check_node_id(node_id: Any, node: BaseNode) -> None:
    if not isinstance(node_id, str) or not node_id:
        raise GraphDefinitionError(
            f"node_id must be a non-empty string, got {node_id!r} for {type(node).__name__}"
        )


def _refuse_coroutine(method: str) -> Any:
    """A ``_run`` for sync node classes that define ``async def <method>``: fail clearly, naming
    the node, instead of putting a never-awaited coroutine into ``shared``."""

    def _run(self: BaseNode, shared: Any) -> Any:
        raise NodeExecutionError(
            f"{type(self).__name__} {self.node_id!r} defines `async def {method}`, but a sync Node "
            f"calls {method}() without awaiting it. Subclass kaygraph.AsyncNode and define "
            f"`async def {method}_async` instead, or make {method} a plain def.",
            node_id=self.node_id,
        )

    return _run


class _ConditionalTransition:
    """The half-built edge ``node - "action"``, completed by ``>> target``."""

    __slots__ = ("action", "source")

    def __init__(self, source: BaseNode, action: str) -> None:
        self.source = source
        self.action = action

    def __rshift__(self, target: BaseNode) -> BaseNode:
        return self.source.next(target, self.action)
