"""Change tracking: what a step changed in ``shared``, at a cost that follows the change.

How an in-place mutation is detected (correctness first):

1. **Which keys to look at.** A durable run hands the graph a :class:`TrackedDict`, a ``dict``
   subclass that records every top-level key a node reaches through it (``shared[k]``, ``get``,
   ``setdefault``, ``pop``, assignment, deletion; ``items()``, ``values()``, ``copy()``, ``dict(shared)``,
   ``{**shared}`` and ``json.dumps(shared)`` count as reaching every key). A nested value can only
   be mutated by code that got hold of it, and within a run that code got it through ``shared``,
   so keys nobody reached are unchanged and cost nothing. Two keys holding the same object (an
   alias) are looked at together: reaching one marks the other. While nodes run concurrently
   (parallel batch graphs), reached keys stay marked until no node is running.
2. **What changed in a reached key.** Immutable scalars are compared by identity. A list is
   compared with a private shadow copy of its items (``value[:n] == shadow``, a C-speed deep
   comparison whose leaves are the very same objects): an unchanged prefix means only the new
   items are encoded and stored (an *append*); anything else re-encodes the value. Every other
   value is re-encoded and its JSON compared with the last one, so an equal replacement stores
   nothing and a deleted key is stored as deleted.

Limits, stated plainly: a value mutated through a reference kept *outside* ``shared`` from an
earlier step (a global, a node attribute) without reaching it through ``shared`` again is seen
only when some later step reaches that key; an object nested inside one key and also stored under
another key is not an alias at the top level and is not followed. Numbers equal across types
(``1``, ``1.0``, ``True``) nested inside an old list item compare equal, so such a retyping alone
is recorded when that item is next re-encoded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from kaygraph.core.exceptions import SerializationError

from .abc import Serializer
from .records import json_string

_IMMUTABLE = (str, int, float, bool, type(None), bytes)
_SCALAR_TYPES = frozenset((str, int, float, bool, type(None)))
_MISSING = object()
#: Encoded values at most this long are repeated in every snapshot instead of being referenced.
INLINE_LIMIT = 512


class TrackedDict(dict):  # type: ignore[type-arg]
    """The shared store of a durable run: a ``dict`` that remembers which keys were reached.

    Behaves exactly like the dict it copies; :class:`StateTracker` reads and resets
    :attr:`touched`. See the module docstring for what counts as reaching a key.
    """

    __slots__ = ("_all", "touched")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set[Any] = set()
        self._all = False

    def reached_all(self) -> bool:
        """Whether every key was reached (an iteration over values or items, a copy...)."""
        return self._all

    def reset(self) -> None:
        """Forget what was reached (the tracker looked at it)."""
        self.touched = set()
        self._all = False

    def _everything(self) -> None:
        self._all = True

    # -- reads that hand out values --------------------------------------------------------------

    def __getitem__(self, key: Any) -> Any:
        self.touched.add(key)
        return dict.__getitem__(self, key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.touched.add(key)
        return dict.get(self, key, default)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self.touched.add(key)
        return dict.setdefault(self, key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        self.touched.add(key)
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[Any, Any]:
        key, value = dict.popitem(self)
        self.touched.add(key)
        return key, value

    def values(self) -> Any:
        self._everything()
        return dict.values(self)

    def items(self) -> Any:
        self._everything()
        return dict.items(self)

    def copy(self) -> dict[Any, Any]:
        self._everything()
        return dict(dict.items(self))

    def __iter__(self) -> Iterator[Any]:
        # Defined (not inherited) on purpose: CPython then builds dict(shared) and {**shared}
        # through keys() and __getitem__, so those copies mark the keys they hand out.
        return dict.__iter__(self)

    def __or__(self, other: Any) -> Any:
        self._everything()
        return dict(dict.items(self)) | other

    def __reduce_ex__(self, protocol: Any) -> Any:
        self._everything()
        return (dict, (dict(dict.items(self)),))

    # -- writes ----------------------------------------------------------------------------------

    def __setitem__(self, key: Any, value: Any) -> None:
        self.touched.add(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self.touched.add(key)
        dict.__delitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._everything()
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any) -> TrackedDict:
        self._everything()
        dict.update(self, other)
        return self

    def clear(self) -> None:
        self._everything()
        dict.clear(self)


def _plain_copy(value: Any) -> Any:
    """A copy of a plain JSON-like value that shares its immutable leaves, or ``_MISSING`` when
    the value holds anything else (its equality would not be a faithful change test)."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        if kind is float and value != value:  # NaN never equals itself: not comparable
            return _MISSING
        return value
    if kind is list:
        items = [_plain_copy(item) for item in value]
        return _MISSING if any(item is _MISSING for item in items) else items
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                return _MISSING
            copy = _plain_copy(item)
            if copy is _MISSING:
                return _MISSING
            copied[key] = copy
        return copied
    return _MISSING


class _Entry:
    """What the tracker knows about one top-level key."""

    __slots__ = ("chain", "holder", "items", "obj", "shadow", "since", "text")

    def __init__(self) -> None:
        self.obj: Any = _MISSING
        #: The value's JSON text (None for a list kept as item texts).
        self.text: str | None = None
        #: A list's item texts and its shadow (plain copies of its items).
        self.items: list[str] | None = None
        self.shadow: list[Any] | None = None
        #: Since the last snapshot: None (unchanged), "set" (replaced) or the appended item texts.
        self.since: Any = "set"
        #: The snapshot that resolves this value as of the last snapshot, and the snapshots needed
        #: to resolve it from there (see records.py: snapshot references).
        self.holder: int | None = None
        self.chain: tuple[int, ...] = ()

    def full_text(self) -> str:
        if self.items is not None:
            return "[" + ",".join(self.items) + "]"
        return self.text or "null"


class Delta:
    """What one step changed: keys set to a new JSON text, list items appended, keys deleted."""

    __slots__ = ("appended", "changed", "deleted")

    def __init__(self) -> None:
        self.changed: dict[str, str] = {}
        self.appended: dict[str, tuple[int, list[str]]] = {}
        self.deleted: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.changed or self.appended or self.deleted)


class StateTracker:
    """Turns ``shared`` into per-step deltas and snapshots (see the module docstring).

    Thread-safe in the sense the checkpointer needs: it is called under the checkpointer's lock;
    :meth:`enter` / :meth:`leave` count nodes in flight so reached keys stay marked while nodes
    overlap.
    """

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.entries: dict[str, _Entry] = {}
        self._in_flight = 0
        self._lock = threading.Lock()

    # -- nodes in flight -----------------------------------------------------------------------

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)

    # -- deltas --------------------------------------------------------------------------------

    def diff(self, shared: Any, *, everything: bool = False) -> Delta:
        """What changed since the previous call (every key is examined with ``everything``)."""
        if not isinstance(shared, dict):
            raise SerializationError(
                f"cannot checkpoint a shared store of type {type(shared).__name__}: durable runs need "
                "a dict (its top-level keys are checkpointed one by one). Wrap the value in a dict.",
                key_path="shared",
            )
        entries = self.entries
        delta = Delta()
        tracked = shared if isinstance(shared, TrackedDict) else None
        if everything or tracked is None or tracked.reached_all():
            candidates: Any = list(dict.keys(shared))
        else:
            reached = tracked.touched
            candidates = [key for key in reached if dict.__contains__(shared, key)]
            if len(dict.keys(shared)) != len(entries) or len(reached) != len(candidates):
                # New or deleted keys: also look at keys the entries do not know.
                candidates += [key for key in dict.keys(shared) if key not in entries and key not in reached]
            # Aliases: an unreached key holding the same object as a reached one. Only mutable
            # values matter (an immutable one cannot change in place), so a step that reached
            # only strings and numbers skips the scan.
            values = [dict.__getitem__(shared, key) for key in candidates]
            ids = {id(value) for value in values if type(value) not in _IMMUTABLE}
            if ids and entries:
                candidates += [
                    key
                    for key, entry in entries.items()
                    if key not in reached
                    and entry.obj is not _MISSING
                    and id(entry.obj) in ids
                    and dict.__contains__(shared, key)
                ]
        for key in candidates:
            self._examine(key, dict.__getitem__(shared, key), delta)
        if len(entries) > len(dict.keys(shared)):
            delta.deleted = [key for key in entries if not dict.__contains__(shared, key)]
            for key in delta.deleted:
                del entries[key]
        if tracked is not None and self._in_flight == 0:
            tracked.reset()
        return delta

    def _examine(self, key: Any, value: Any, delta: Delta) -> None:
        if type(key) is not str:
            raise SerializationError(
                f"cannot checkpoint shared[{key!r}]: top-level keys of the shared store must be "
                f"strings, got {type(key).__name__}. Use a string key.",
                key_path=f"shared[{key!r}]",
            )
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry()
        elif type(value) in _IMMUTABLE and entry.obj is value:
            return
        path = f"shared[{key!r}]"
        if type(value) is list and entry.shadow is not None:
            shadow = entry.shadow
            count = len(shadow)
            if len(value) >= count and (value == shadow if len(value) == count else value[:count] == shadow):
                if len(value) == count:
                    entry.obj = value
                    return
                self._append(key, entry, value, count, delta, path)
                return
        self._replace(key, entry, value, delta, path)

    def _append(self, key: str, entry: _Entry, value: list[Any], count: int, delta: Delta, path: str) -> None:
        new = value[count:]
        try:
            shadows = [_plain_copy(item) for item in new]
        except RecursionError:
            shadows = [_MISSING]
        if any(item is _MISSING for item in shadows):
            self._replace(key, entry, value, delta, path)
            return
        texts = [self._encode(item, f"{path}[{count + index}]") for index, item in enumerate(new)]
        assert entry.items is not None and entry.shadow is not None
        entry.items.extend(texts)
        entry.shadow.extend(shadows)
        entry.obj = value
        delta.appended[key] = (count, texts)
        if entry.since is None:
            entry.since = list(texts)
        elif entry.since != "set":
            entry.since.extend(texts)

    def _replace(self, key: str, entry: _Entry, value: Any, delta: Delta, path: str) -> None:
        if type(value) is list and self.serializer.itemwise:
            try:
                shadow = _plain_copy(value)
            except RecursionError:
                shadow = _MISSING  # too deep to shadow: the encoder names the problem below
            if shadow is not _MISSING:
                items = [self._encode(item, f"{path}[{index}]") for index, item in enumerate(value)]
                text = "[" + ",".join(items) + "]"
                if entry.full_text() != text or entry.obj is _MISSING:
                    delta.changed[key] = text
                    entry.since = "set"
                entry.items, entry.shadow, entry.text, entry.obj = items, shadow, None, value
                return
        text = self._encode(value, path)
        if entry.obj is _MISSING or entry.full_text() != text:
            delta.changed[key] = text
            entry.since = "set"
        entry.items = entry.shadow = None
        entry.text, entry.obj = text, value

    def _encode(self, value: Any, path: str) -> str:
        try:
            return self.serializer.encode(value, path)
        except RecursionError as exc:
            raise SerializationError(
                f"cannot checkpoint {path}: it is nested too deeply or contains itself (a recursive "
                "structure); store a flatter value, or break the cycle.",
                key_path=path,
            ) from exc

    # -- snapshots ------------------------------------------------------------------------------

    def texts(self) -> dict[str, str]:
        """Every key's current JSON text (a full snapshot)."""
        return {key: entry.full_text() for key, entry in self.entries.items()}

    def snapshot(self, seq: int, *, full: bool = False) -> tuple[dict[str, str], dict[str, str], set[int]]:
        """The entries of snapshot ``seq``: ``(inline texts, references, snapshots referenced)``.

        A value that did not change since the last snapshot and is longer than ``INLINE_LIMIT``
        is a reference to the snapshot that holds it; a list that only grew is a reference plus
        its new items. So a snapshot costs what changed since the previous one, and the
        referenced snapshots (returned) must be kept for as long as this one is.
        """
        inline: dict[str, str] = {}
        refs: dict[str, str] = {}
        needed: set[int] = set()
        for key, entry in self.entries.items():
            since, holder = entry.since, entry.holder
            if (
                full
                or holder is None
                or since == "set"
                or (entry.items is None and len(entry.text or "") <= INLINE_LIMIT)
            ):
                inline[key] = entry.full_text()
                entry.holder, entry.chain = seq, ()
            elif since is None:
                refs[key] = f"[{holder}]"
                needed.update(entry.chain)
                needed.add(holder)
            else:
                refs[key] = f"[{holder},[{','.join(since)}]]"
                entry.chain = (holder, *entry.chain)
                entry.holder = seq
                needed.update(entry.chain)
            entry.since = None
        return inline, refs, needed


def key_json(key: str) -> str:
    """JSON text of a top-level key."""
    return str(json_string(key))


__all__ = ["INLINE_LIMIT", "Delta", "StateTracker", "TrackedDict", "key_json"]
