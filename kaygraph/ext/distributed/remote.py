"""The side of a call that runs on a worker: unpack the payload, run it in the driver's trace
context, pack the outcome so that even an unpicklable exception comes back as a clear error.

Every executor submits :func:`execute` with the payload bytes and the shared objects; the engines
ship this module by reference, so workers need KayGraph installed (they need it for the nodes
anyway).
"""

from __future__ import annotations

import os
import socket
import traceback
from typing import Any

from . import pickling
from .errors import RemoteError
from .tracecontext import remote_span

#: Outcome tags of :func:`execute`: the call returned a value, or raised.
RETURNED, RAISED = "ok", "raise"


def execute(payload: bytes, *shared: Any) -> bytes:
    """Run the call packed by :func:`.pickling.dumps_call`; return its outcome, pickled."""
    fn, args, (carrier, label, attributes) = pickling.loads(payload, shared)
    with remote_span(carrier, label, attributes):
        try:
            outcome: tuple[str, Any] = (RETURNED, fn(*args))
        except Exception as exc:  # KeyboardInterrupt (Ray's cancel) and SystemExit end the task
            _note_origin(exc)
            outcome = (RAISED, exc)
    if outcome[0] == RETURNED and isinstance(outcome[1], list):
        _note_item_errors(args, outcome[1])
    return pack(outcome)


def _note_item_errors(args: tuple[Any, ...], outcomes: list[Any]) -> None:
    """The core's per-item outcomes ``("error", exc)`` keep their traceback and item index."""
    node_id = attributes_node_id(args)
    items = next((arg for arg in args if isinstance(arg, list) and len(arg) == len(outcomes)), None)
    for position, entry in enumerate(outcomes):
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], BaseException):
            index = items[position][0] if items is not None and isinstance(items[position], tuple) else None
            what = f"item {index} of node {node_id!r}" if index is not None and node_id else None
            _note_origin(entry[1], what)


def attributes_node_id(args: tuple[Any, ...]) -> str | None:
    from kaygraph.core.base_node import BaseNode

    node = next((arg for arg in args if isinstance(arg, BaseNode)), None)
    return None if node is None else node.node_id


def _origin() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


def _note_origin(exc: BaseException, what: str | None = None) -> None:
    """Keep the worker's traceback on the exception (tracebacks do not pickle, notes do)."""
    if getattr(exc, "_kaygraph_remote_noted", False) or exc.__traceback__ is None:
        return
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    try:
        exc._kaygraph_remote_noted = True  # type: ignore[attr-defined]
        subject = f"{what} raised" if what else "raised"
        exc.add_note(f"KayGraph: {subject} on worker {_origin()}:\n{text}")
    except AttributeError:  # pragma: no cover - exceptions with __slots__ / Python 3.10
        pass


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles, else a :class:`RemoteError` with its type, message and traceback."""
    try:
        pickling.dumps(exc)
        return exc
    except Exception as problem:
        notes = "\n".join(getattr(exc, "__notes__", ()))
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return RemoteError(
            f"{name}: {exc} (raised on worker {_origin()}; the exception itself could not be sent back: "
            f"{type(problem).__name__}: {problem})" + (f"\n{notes}" if notes else ""),
            remote_type=name,
        )


def pack(outcome: tuple[str, Any]) -> bytes:
    """Pickle an outcome; exceptions (also inside per-item outcomes) that do not pickle are replaced."""
    try:
        return pickling.dumps(outcome)
    except Exception:
        tag, value = outcome
    if tag == RAISED:
        return pickling.dumps((RAISED, _portable(value)))
    if isinstance(value, list):
        cleaned = [
            (entry[0], _portable(entry[1]))
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], BaseException)
            else entry
            for entry in value
        ]
        try:
            return pickling.dumps((RETURNED, cleaned))
        except Exception as again:
            problem = again
    error = RemoteError(
        f"the result computed on worker {_origin()} cannot be sent back: it does not pickle "
        f"({type(problem).__name__}: {problem}). Return plain data from exec.",
        remote_type=type(problem).__name__,
    )
    return pickling.dumps((RAISED, error))


def unpack(data: bytes) -> tuple[str, Any]:
    """The outcome :func:`execute` packed: ``("ok", value)`` or ``("raise", exception)``."""
    outcome: tuple[str, Any] = pickling.loads(data)
    return outcome


def run_setup(setup: bytes | None) -> None:
    """Run a pickled ``worker_setup`` callable once in a fresh worker process."""
    if setup is not None:
        pickling.loads(setup)()


__all__ = ["RAISED", "RETURNED", "execute", "pack", "run_setup", "unpack"]
