"""What travels to the workers: a call ``fn(*args)`` pickled once with cloudpickle, large leaf
objects split off so each goes to the cluster once, and an error naming the attribute path of
anything that cannot be pickled.

A payload is ``cloudpickle((fn, args, extra))`` (``extra``: the trace context and a label) in
which every ``bytes``, ``str``, ``bytearray`` or NumPy array of at least ``share_threshold``
bytes is replaced by a reference (pickle's persistent ids). The executor puts those objects into
the engine's object store once (Dask ``scatter``, Ray ``put``) and passes the references beside
the payload; the engine resolves them on the worker, where :func:`loads` puts them back in place.

A node may keep attributes on the driver with ``remote_exclude = ("client",)`` on its class: the
copy sent to the workers lacks them (create them lazily in ``exec``, e.g. with
``functools.cached_property``).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Iterator
from typing import Any

from kaygraph.core.base_node import BaseNode
from kaygraph.utils.imports import require_package

from .errors import UnpicklableError

cloudpickle = require_package("cloudpickle", "distributed", "Sending graphs to a cluster")

_PROTOCOL = 5
_MAX_DEPTH = 12
_SKIPPED_NODE_ATTRIBUTES = frozenset({"successors", "_start_node", "_index", "_ids", "_run_ctx"})


def _rebuild_node(cls: type, state: dict[str, Any]) -> Any:
    node = cls.__new__(cls)
    node.__dict__.update(state)
    return node


def _excluded(node: BaseNode) -> tuple[str, ...]:
    exclude = getattr(node, "remote_exclude", ())
    return (exclude,) if isinstance(exclude, str) else tuple(exclude or ())


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle, plus ``remote_exclude`` on nodes."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseNode) and getattr(obj, "remote_exclude", None):
            exclude = _excluded(obj)
            state = {key: value for key, value in vars(obj).items() if key not in exclude}
            return _rebuild_node, (type(obj), state)
        return super().reducer_override(obj)


def _large(obj: Any, threshold: int) -> bool:
    kind = type(obj)
    if kind is bytes or kind is str or kind is bytearray:
        return len(obj) >= threshold
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        return int(obj.nbytes) >= threshold
    return False


class _SharingPickler(_Pickler):
    """Also replaces large leaf objects by their index in ``shared`` (once per object)."""

    def __init__(self, file: Any, threshold: int, shared: list[Any]) -> None:
        super().__init__(file, protocol=_PROTOCOL)
        self._threshold = threshold
        self._shared = shared
        self._positions: dict[int, int] = {}

    def persistent_id(self, obj: Any) -> int | None:
        if not _large(obj, self._threshold):
            return None
        position = self._positions.get(id(obj))
        if position is None:
            position = self._positions[id(obj)] = len(self._shared)
            self._shared.append(obj)
        return position


class _SharedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, shared: tuple[Any, ...]) -> None:
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, pid: Any) -> Any:
        return self._shared[pid]


class _Oversize(Exception):
    """The pickle grew past the share threshold: it may hold a leaf worth sharing."""


class _CappedBuffer(io.BytesIO):
    """A buffer that refuses to grow past ``limit`` bytes (raising :class:`_Oversize`)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def write(self, data: Any) -> int:
        if self.tell() + len(memoryview(data)) >= self._limit:
            raise _Oversize
        return super().write(data)


def dumps(obj: Any, *, share_threshold: int | None = None, shared: list[Any] | None = None) -> bytes:
    """Pickle ``obj`` for a worker; with ``share_threshold``, large leaves are appended to ``shared``
    and replaced by references. Errors propagate as the pickler raised them.

    A pickle smaller than the threshold cannot hold a leaf that large, so the plain pickler tries
    first, into a buffer capped at the threshold (the pickler writes a large leaf in one piece, so
    at most the threshold's worth of work is redone); only a bigger pickle is redone by the sharing
    pickler, whose per-object hook costs about as much as pickling a small call itself.
    """
    if share_threshold and shared is not None:
        capped = _CappedBuffer(share_threshold)
        try:
            _Pickler(capped, protocol=_PROTOCOL).dump(obj)
            return capped.getvalue()
        except _Oversize:
            pass
        buffer = io.BytesIO()
        _SharingPickler(buffer, share_threshold, shared).dump(obj)
        return buffer.getvalue()
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=_PROTOCOL).dump(obj)
    return buffer.getvalue()


def dumps_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    extra: Any,
    *,
    share_threshold: int | None,
    shared: list[Any],
) -> bytes:
    """Pickle the call ``fn(*args)`` (plus ``extra``, e.g. the trace context) for a worker.

    Raises :class:`UnpicklableError` naming the node and attribute path of what fails to pickle.
    """
    try:
        return dumps((fn, args, extra), share_threshold=share_threshold, shared=shared)
    except Exception as exc:
        raise unpicklable_error(fn, args, exc) from exc


def loads(data: bytes, shared: tuple[Any, ...] = ()) -> Any:
    """The inverse of :func:`dumps`, with the shared objects put back in place."""
    if not shared:
        return pickle.loads(data)
    return _SharedUnpickler(io.BytesIO(data), shared).load()


# -- finding the culprit ----------------------------------------------------------------------


def _picklable(obj: Any) -> Exception | None:
    try:
        _Pickler(io.BytesIO(), protocol=_PROTOCOL).dump(obj)
    except Exception as exc:
        return exc
    return None


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    """The parts of ``obj`` that pickle pickles, each with the text that extends the path to it."""
    from kaygraph.core.graph import Graph

    if isinstance(obj, Graph):
        yield from ((f".{node_id}", node) for node_id, node in obj.nodes().items())
    if isinstance(obj, dict):
        yield from ((f"[{key!r}]", value) for key, value in obj.items())
    elif isinstance(obj, (list, tuple)):
        yield from ((f"[{index}]", value) for index, value in enumerate(obj))
    elif isinstance(obj, (set, frozenset)):
        yield from (("{...}", value) for value in obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        skip = _SKIPPED_NODE_ATTRIBUTES | set(_excluded(obj)) if isinstance(obj, BaseNode) else ()
        yield from ((f".{name}", value) for name, value in vars(obj).items() if name not in skip)
    for klass in type(obj).__mro__:
        slots = vars(klass).get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                yield f".{name}", getattr(obj, name)


def find_unpicklable(obj: Any, root: str) -> tuple[str, Any, Exception, BaseNode | None] | None:
    """The deepest part of ``obj`` that does not pickle: ``(path, part, error, node it is in)``, or None.

    >>> import threading
    >>> find_unpicklable({"ok": 1, "lock": threading.Lock()}, "shared")[0]
    "shared['lock']"
    """
    error = _picklable(obj)
    if error is None:
        return None
    return _descend(obj, root, error, obj if isinstance(obj, BaseNode) else None, 0, set())


def _descend(
    obj: Any, path: str, error: Exception, node: BaseNode | None, depth: int, seen: set[int]
) -> tuple[str, Any, Exception, BaseNode | None]:
    seen.add(id(obj))
    if depth < _MAX_DEPTH:
        for suffix, child in _children(obj):
            if id(child) in seen:
                continue
            child_error = _picklable(child)
            if child_error is not None:
                owner = child if isinstance(child, BaseNode) else node
                return _descend(child, path + suffix, child_error, owner, depth + 1, seen)
    return path, obj, error, node


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}".removeprefix("builtins.")


def call_parts(args: tuple[Any, ...]) -> list[tuple[str, str, Any]]:
    """``(subject, path root, object)`` for each part of a call's arguments, named for a user.

    The core's ``run_exec_chunk(node, [(index, item), ...])`` gets the node's class name as root
    and ``item 3 of node 'Summarize'`` as subject for each item.
    """
    node = next((arg for arg in args if isinstance(arg, BaseNode)), None)
    parts: list[tuple[str, str, Any]] = []
    for position, arg in enumerate(args):
        if isinstance(arg, BaseNode):
            parts.append((f"node {arg.node_id!r}", type(arg).__name__, arg))
        elif (
            node is not None
            and isinstance(arg, list)
            and all(
                isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], int) for entry in arg
            )
        ):
            parts.extend(
                (f"item {index} of node {node.node_id!r}", f"items[{index}]", item) for index, item in arg
            )
        else:
            parts.append((f"argument {position}", f"args[{position}]", arg))
    return parts


def unpicklable_error(fn: Any, args: tuple[Any, ...], error: Exception) -> UnpicklableError:
    """The error for a call that failed to pickle with ``error``: the culprit's path and the fix."""
    parts = [("the function", getattr(fn, "__qualname__", "fn"), fn), *call_parts(args)]
    located = ((subject, find_unpicklable(part, root)) for subject, root, part in parts)
    subject, found = next(
        ((subject, found) for subject, found in located if found is not None), ("the call", None)
    )
    if found is None:  # every part pickles alone; only the combination failed (rare): report the call
        found = (getattr(fn, "__qualname__", "fn"), fn, error, None)
    path, culprit, cause, node = found
    kind = _type_name(culprit)
    if node is not None:
        attribute = path.split(".")[1] if path.startswith(type(node).__name__ + ".") else "name"
        attribute = attribute.split("[")[0]
        fix = (
            "Create it on the worker instead (inside exec, or lazily with functools.cached_property), "
            f"or keep it on the driver by declaring on {type(node).__name__}: "
            f"remote_exclude = ({attribute!r},)"
        )
    else:
        fix = "Send only data that pickles: create clients, locks, files and generators where they are used"
    message = (
        f"{subject} cannot be sent to the workers: {path} is a {kind}, which cannot be pickled "
        f"({type(cause).__name__}: {cause}). {fix}. Nothing was submitted."
    )
    return UnpicklableError(
        message, path=path, node_id=None if node is None else node.node_id, culprit_type=kind
    )


def describe_args(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, str | None]:
    """A short label for the remote call (its span name) and the node it runs, if any."""
    node = next((arg for arg in args if isinstance(arg, BaseNode)), None)
    if node is None:
        return getattr(fn, "__name__", "call"), None
    return f"remote {node.node_id}", node.node_id


__all__ = [
    "call_parts",
    "describe_args",
    "dumps",
    "dumps_call",
    "find_unpicklable",
    "loads",
    "unpicklable_error",
]
