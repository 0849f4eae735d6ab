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
3. **Which items of a list.** After a step that appended to a top-level list of at least
   :data:`ADOPT_LENGTH` items held by nothing but ``shared`` and the caller's dict it was copied
   from (counted with ``sys.getrefcount``), the list is replaced, in both dicts, by a
   :class:`TrackedList` of the same items. It logs which old items it handed out: appends are
   counted, never compared; ``lst[i]`` and short slices mark those indices; whatever hands out
   every item or rearranges the list marks all of it. Only marked items are compared with the
   shadow, plus the length (the old one plus the counted appends) and the identity of the first
   and last old items: C code such as ``heapq`` writes without the methods, and any mismatch
   compares the whole list. Snapshots and the run's end compare every item of every key. A
   graph step counts as in flight: what its ``prep`` reached stays marked until its ``post`` ran,
   and no list is swapped while a graph is in flight (its prep may hold old items, unlogged).
4. **Invisible.** :meth:`StateTracker.release` ends the run: each TrackedList's original plain
   list gets the final items, and every dict, list or instance dict holding the TrackedList (the
   state, the caller's dict, a nested value, a node's attribute; ``gc.get_referrers``, only when
   the reference count shows it escaped) holds the original again.

Limits, stated plainly: inside a run a TrackedList is a list subclass (``type(x) is list``,
``yaml.safe_dump`` and ``msgpack`` with ``strict_types`` refuse it); after it, a reference held
by a tuple, ``__slots__``, a closure cell or a running frame stays a TrackedList. A value mutated
through a reference kept *outside* ``shared`` from an earlier step (a global, a node attribute)
without reaching it through ``shared`` again is seen only when some later step reaches that key
(an item of a TrackedList: at the next snapshot), and so are writes through the base class
(``list.__setitem__(lst, i, v)``, ``list.__getitem__(lst, i)``) and C code that rearranges old
items keeping the length and ends; an object nested inside one key and also stored under another
key is not an alias at the top level and is not followed. Numbers equal across types (``1``,
``1.0``, ``True``) nested inside an old list item compare equal, so such a retyping alone is
recorded when that item is next re-encoded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

from kaygraph.core.exceptions import SerializationError

from .abc import Serializer
from .records import json_string

_IMMUTABLE = (str, int, float, bool, type(None), bytes)
#: A list is handed out as a TrackedList only once it is this long and growing by appends: below
#: it, comparing every item costs less than a few microseconds per step (bench/persistence_speed.py).
ADOPT_LENGTH = 256
_SCALAR_TYPES = frozenset((str, int, float, bool, type(None)))
_MISSING = object()
#: A list that grew over this many snapshots is written whole again, so reading any state
#: follows at most this many references (the older snapshots are then pruned).
MAX_CHAIN = 8
#: Encoded values at most this long are repeated in every snapshot instead of being referenced.
INLINE_LIMIT = 512
#: A slice longer than this marks a whole TrackedList as reached.
_SLICE_LIMIT = 64


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


class TrackedList(list):  # type: ignore[type-arg]
    """A top-level list of a durable run's shared store that remembers which old items it handed out.

    Appends (``append``, ``extend``, ``+=``) are counted, never compared. Reading
    one item (``lst[i]``, a short slice) marks that index; anything that hands out every item or
    rearranges the list (iteration, ``copy``, ``+``, comparisons, ``pop``, ``sort``, assignment,
    deletion...) marks the whole list, which is then compared exactly. See the module docstring.
    """

    __slots__ = ("_added", "_all", "_origin", "_reached")

    def __init__(self, *args: Any) -> None:
        list.__init__(self, *args)
        self._reached: set[int] = set()
        self._all = True  # re-initialised by user code: compare everything
        #: Items added by this list's own append/extend/+= since the tracker last looked: a
        #: longer list with fewer recorded additions was grown by C code (heapq) and is compared.
        self._added = 0
        #: The plain list this one replaced (it gets the final items back at the run's end).
        self._origin: list[Any] = []

    def reset(self) -> None:
        """Forget what was reached (the tracker looked at it)."""
        self._reached = set()
        self._all = False
        self._added = 0

    def append(self, item: Any) -> None:
        self._added += 1
        list.append(self, item)

    def extend(self, items: Any) -> None:
        before = len(self)
        list.extend(self, items)
        self._added += len(self) - before

    def __getitem__(self, index: Any) -> Any:
        item = list.__getitem__(self, index)
        if type(index) is int:
            if type(item) not in _IMMUTABLE:
                self._reached.add(index if index >= 0 else index + len(self))
        elif type(index) is slice:
            span = range(*index.indices(len(self)))
            if len(span) > _SLICE_LIMIT:
                self._all = True
            else:
                self._reached.update(span)
        else:
            self._all = True
        return item

    def __contains__(self, item: Any) -> bool:
        if type(item) not in _IMMUTABLE:
            self._all = True  # the item's __eq__ meets every element
        return list.__contains__(self, item)

    def index(self, item: Any, *args: Any) -> int:
        if type(item) not in _IMMUTABLE:
            self._all = True
        return list.index(self, item, *args)

    def count(self, item: Any) -> int:
        if type(item) not in _IMMUTABLE:
            self._all = True
        return list.count(self, item)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Pickles and deep copies are plain lists (and hand no item out).
        return (list, (list.copy(self),))

    def __add__(self, other: Any) -> Any:
        self._all = True
        if type(other) is TrackedList:
            other._all = True
        return list.__add__(self, other)

    def __radd__(self, other: Any) -> Any:
        # ``plain + tracked`` and ``plain += tracked``: marked here, then done by the plain list
        # as usual (NotImplemented), so ``+=`` still extends the left list in place.
        self._all = True
        return NotImplemented

    def __iadd__(self, other: Any) -> TrackedList:
        # Defined so ``+=`` extends in place instead of falling back to __add__ (a new list).
        if type(other) is TrackedList:
            other._all = True
        before = len(self)
        list.__iadd__(self, other)
        self._added += len(self) - before
        return self

    __hash__ = None


def _marking_all(name: str) -> Any:
    """``list.<name>``, marking the whole TrackedList as reached first."""
    method = getattr(list, name)

    def marked(self: TrackedList, *args: Any, **kwargs: Any) -> Any:
        self._all = True
        return method(self, *args, **kwargs)

    marked.__name__ = marked.__qualname__ = name
    marked.__doc__ = method.__doc__
    return marked


# What hands out every item (iteration, copies, repetition, comparisons with another list) or
# rearranges the list: the whole list is compared after the step.
for _name in (
    "__iter__", "__reversed__", "copy", "__mul__", "__rmul__", "__eq__", "__ne__", "__lt__", "__le__",
    "__gt__", "__ge__", "__setitem__", "__delitem__", "__imul__", "insert", "pop", "remove",
    "clear", "sort", "reverse",
):  # fmt: skip
    setattr(TrackedList, _name, _marking_all(_name))
TrackedList.__copy__ = TrackedList.copy  # type: ignore[attr-defined]
del _name


def _repoint(holder: Any, tracked: TrackedList, plain: list[Any], owner: type | None = None) -> None:
    """In the dict or list ``holder``, replace every reference to ``tracked`` with ``plain``
    (through ``setattr`` when ``holder`` is the namespace of the class ``owner``, so its
    attribute caches see the change)."""
    if isinstance(holder, dict):
        for key, value in list(dict.items(holder)):
            if value is tracked:
                if owner is not None:
                    setattr(owner, key, plain)
                else:
                    dict.__setitem__(holder, key, plain)
    elif isinstance(holder, list):
        for index, value in enumerate(list(list.__iter__(holder))):
            if value is tracked:
                list.__setitem__(holder, index, plain)


def _repoint_everywhere(escaped: list[TrackedList], ignore: tuple[Any, ...]) -> None:
    """Point every dict and list holding one of ``escaped`` (outside ``ignore``) at its original
    plain list: a value moved under a nested key, a node's attribute, a global. A heap scan
    (``gc.get_referrers``), paid only by runs whose tracked lists were kept elsewhere."""
    import gc

    holders = [
        holder
        for holder in gc.get_referrers(*escaped)
        if isinstance(holder, (dict, list)) and not any(holder is other for other in ignore)
    ]
    # A class's namespace must be written with setattr; it is a dict with "__module__".
    namespaces = {id(holder) for holder in holders if type(holder) is dict and "__module__" in holder}
    owners: dict[int, type] = {}
    if namespaces:
        for owner in gc.get_referrers(*(holder for holder in holders if id(holder) in namespaces)):
            if isinstance(owner, type):
                for referent in gc.get_referents(owner):
                    if id(referent) in namespaces:
                        owners[id(referent)] = owner
    for holder in holders:
        for tracked in escaped:
            _repoint(holder, tracked, tracked._origin, owners.get(id(holder)))


def _references(container: dict[Any, Any], key: Any) -> int:
    """The reference count of ``container[key]`` as seen from here (compared with ``_ALONE``)."""
    value = dict.__getitem__(container, key)
    return sys.getrefcount(value)


#: The count :func:`_references` sees for a value held by its container only; None where
#: reference counts are not exact (PyPy, free-threaded builds): lists are then never adopted.
_ALONE: int | None = (
    _references({"k": []}, "k")
    if hasattr(sys, "getrefcount") and getattr(sys, "_is_gil_enabled", lambda: True)()
    else None
)


def _plain_copy(value: Any) -> Any:
    """A copy of a plain JSON-like value that shares its immutable leaves, or ``_MISSING`` when
    the value holds anything else (its equality would not be a faithful change test)."""
    kind = type(value)
    if kind in _SCALAR_TYPES:
        if kind is float and value != value:  # NaN never equals itself: not comparable
            return _MISSING
        return value
    if kind is list or kind is TrackedList:
        items = [_plain_copy(item) for item in list.__iter__(value)]
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

    __slots__ = ("chain", "edges", "holder", "items", "obj", "shadow", "since", "text")

    def __init__(self) -> None:
        self.obj: Any = _MISSING
        #: The value's JSON text (None for a list kept as item texts).
        self.text: str | None = None
        #: A list's item texts and its shadow (plain copies of its items).
        self.items: list[str] | None = None
        self.shadow: list[Any] | None = None
        #: A list's first and last items (the objects), checked by identity.
        self.edges: tuple[Any, Any] = (None, None)
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
        #: The caller's dict the run's TrackedDict was copied from (it holds the same lists).
        self.caller: dict[Any, Any] | None = None
        #: Nodes and graphs in flight (a graph's prep result may be edited in its post, after
        #: its children's steps: what it reached stays marked until it ends).
        self._in_flight = 0
        self._graphs = 0
        self._lock = threading.Lock()
        #: The keys holding lists that the last diff examined (to reset or adopt).
        self._lists: list[str] = []
        #: Every TrackedList this run handed out (turned back into plain lists by :meth:`release`).
        self.swapped: list[TrackedList] = []

    # -- nodes in flight -----------------------------------------------------------------------

    def enter(self, *, graph: bool = False) -> None:
        with self._lock:
            self._in_flight += 1
            self._graphs += graph

    def leave(self, *, graph: bool = False) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if graph:
                self._graphs = max(0, self._graphs - 1)

    # -- deltas --------------------------------------------------------------------------------

    def diff(self, shared: Any, *, everything: bool = False, whole_lists: bool = False) -> Delta:
        """What changed since the previous call (every key is examined with ``everything``;
        with ``whole_lists`` every TrackedList is compared item by item, reached or not)."""
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
            # (A copy while nodes are in flight: they may add to it.)
            reached = tracked.touched if self._in_flight == 0 else tracked.touched.copy()
            candidates = [key for key in reached if dict.__contains__(shared, key)]
            if len(dict.keys(shared)) != len(entries) or len(reached) != len(candidates):
                # New or deleted keys: also look at keys the entries do not know.
                candidates += [key for key in dict.keys(shared) if key not in entries and key not in reached]
            # Aliases: an unreached key holding the same object as a reached one. Only mutable
            # values matter (an immutable one cannot change in place), so a step that reached
            # only strings and numbers skips the scan.
            ids = {
                id(value)
                for value in [dict.__getitem__(shared, key) for key in candidates]
                if type(value) not in _IMMUTABLE
            }
            if ids and entries:
                candidates += [
                    key
                    for key, entry in entries.items()
                    if key not in reached
                    and entry.obj is not _MISSING
                    and id(entry.obj) in ids
                    and dict.__contains__(shared, key)
                ]
            if whole_lists:
                candidates += [
                    key
                    for key, entry in entries.items()
                    if type(entry.obj) is TrackedList
                    and key not in reached
                    and dict.__contains__(shared, key)
                ]
        lists = self._lists = []
        for key in candidates:
            self._examine(key, dict.__getitem__(shared, key), delta, whole_lists or everything)
        if len(entries) > len(dict.keys(shared)):
            delta.deleted = [key for key in entries if not dict.__contains__(shared, key)]
            for key in delta.deleted:
                del entries[key]
        # Only when no node runs concurrently: a TrackedList's additions were all recorded just
        # now. What was reached is forgotten once no graph is in flight either (a graph's post
        # may still edit what its prep reached).
        if tracked is not None and self._in_flight == self._graphs:
            settled = self._in_flight == 0
            if settled:
                tracked.reset()
            for key in lists:
                kind = type(dict.get(tracked, key))  # no reference kept here: _adopt counts them
                if kind is TrackedList:
                    value = dict.__getitem__(tracked, key)
                    if settled:
                        value.reset()
                    else:
                        value._added = 0
                    del value
                elif (
                    settled  # (a graph in flight may hold old items its prep reached, unlogged)
                    and kind is list
                    and key in delta.appended
                    and entries[key].shadow is not None
                    and len(entries[key].shadow) >= ADOPT_LENGTH  # type: ignore[arg-type]
                ):
                    self._adopt(tracked, key)
        return delta

    def _adopt(self, shared: TrackedDict, key: str) -> None:
        """Replace the long, growing plain list at ``shared[key]`` with a :class:`TrackedList` of
        the same items, when nothing but the shared store (and the caller's dict it came from,
        which then holds the TrackedList too) holds it: nobody can tell the lists apart, later
        steps compare only the items they reached, and :meth:`release` hands the original back."""
        if _ALONE is None:
            return
        entry = self.entries[key]
        caller = self.caller
        original = dict.__getitem__(shared, key)
        from_caller = caller is not None and dict.get(caller, key) is original
        # Holders: the shared store, the entry, the caller's dict (maybe) and `original` here.
        if _references(shared, key) != _ALONE + 2 + from_caller:
            return
        tracked = TrackedList(original)
        tracked.reset()
        tracked._origin = original
        dict.__setitem__(shared, key, tracked)
        if from_caller:
            dict.__setitem__(caller, key, tracked)  # type: ignore[index]
        entry.obj = tracked
        self.swapped.append(tracked)

    def release(self, shared: Any) -> None:
        """The run's end: every TrackedList it handed out becomes its original plain list again,
        holding the final items, wherever ``shared``, the caller's dict or other dicts and lists
        keep it (a value moved under a nested key, a node's attribute). Only references held by
        tuples, ``__slots__``, closures or running code's variables stay TrackedLists."""
        swapped, self.swapped = self.swapped, []
        if not swapped:
            return
        for entry in self.entries.values():
            if type(entry.obj) is TrackedList:
                entry.obj = _MISSING
        escaped = []
        for tracked in swapped:
            plain = tracked._origin
            list.__setitem__(plain, slice(None), tracked)
            for holder in (shared, self.caller):
                if isinstance(holder, dict):
                    _repoint(holder, tracked, plain)
            # Held by `swapped`, `tracked` and getrefcount's argument: more means kept elsewhere.
            if sys.getrefcount(tracked) > 3:
                escaped.append(tracked)
        del tracked
        if escaped:
            _repoint_everywhere(escaped, (escaped, swapped))

    def _examine(self, key: Any, value: Any, delta: Delta, whole: bool = False) -> None:
        if type(key) is not str:
            raise SerializationError(
                f"cannot checkpoint shared[{key!r}]: top-level keys of the shared store must be "
                f"strings, got {type(key).__name__}. Use a string key.",
                key_path=f"shared[{key!r}]",
            )
        entry = self.entries.get(key)
        kind = type(value)
        if entry is None:
            entry = self.entries[key] = _Entry()
        elif kind in _IMMUTABLE and entry.obj is value:
            return
        if kind in _SCALAR_TYPES:
            self._scalar(key, entry, value, delta)
            return
        path = f"shared[{key!r}]"
        if kind is list or kind is TrackedList:
            self._lists.append(key)
        if (
            kind is TrackedList
            and entry.obj is value
            and entry.shadow is not None
            and not whole
            and not value._all
            and self._only_grew(entry, value)
        ):
            count = len(entry.shadow)
            if len(value) > count:
                self._append(key, entry, value, count, delta, path)
            return
        if (kind is list or kind is TrackedList) and entry.shadow is not None:
            shadow = entry.shadow
            count = len(shadow)
            if len(value) >= count and (
                list.__eq__(value, shadow)
                if len(value) == count
                else list.__getitem__(value, slice(0, count)) == shadow
            ):
                if len(value) == count:
                    entry.obj = value
                    if count:
                        entry.edges = (list.__getitem__(value, 0), list.__getitem__(value, -1))
                    return
                self._append(key, entry, value, count, delta, path)
                return
        self._replace(key, entry, value, delta, path)

    @staticmethod
    def _only_grew(entry: _Entry, value: TrackedList) -> bool:
        """Whether a TrackedList whose log shows no rearrangement still holds its old items
        unchanged: the reached ones are compared exactly; a length that is not the old one plus
        the list's own additions, or first and last old items that are other objects, mean C
        code bypassed the methods (heapq): the caller then compares every item."""
        shadow = entry.shadow
        if shadow is None:
            return False
        count = len(shadow)
        if len(value) != count + value._added:
            return False
        if count and (
            list.__getitem__(value, 0) is not entry.edges[0]
            or list.__getitem__(value, count - 1) is not entry.edges[1]
        ):
            return False
        for index in value._reached.copy():  # (a copy: nodes in flight may add to it)
            if index < count and list.__getitem__(value, index) != shadow[index]:
                return False
        return True

    def _append(self, key: str, entry: _Entry, value: list[Any], count: int, delta: Delta, path: str) -> None:
        new = list.__getitem__(value, slice(count, None))
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
        entry.edges = (list.__getitem__(value, 0), new[-1])
        delta.appended[key] = (count, texts)
        if entry.since is None:
            entry.since = list(texts)
        elif entry.since != "set":
            entry.since.extend(texts)

    def _scalar(self, key: str, entry: _Entry, value: Any, delta: Delta) -> None:
        """A string, number, bool or None: the hot path of small states, kept short."""
        try:
            text = self.serializer.encode(value, "")
        except Exception:
            text = self._encode(value, f"shared[{key!r}]")  # again, to name the key if it fails
        if entry.obj is _MISSING or entry.full_text() != text:
            delta.changed[key] = text
            entry.since = "set"
        entry.items = entry.shadow = None
        entry.text, entry.obj = text, value

    def _replace(self, key: str, entry: _Entry, value: Any, delta: Delta, path: str) -> None:
        if (type(value) is list or type(value) is TrackedList) and self.serializer.itemwise:
            try:
                shadow = _plain_copy(value)
            except RecursionError:
                shadow = _MISSING  # too deep to shadow: the encoder names the problem below
            if shadow is not _MISSING:
                items = [
                    self._encode(item, f"{path}[{index}]") for index, item in enumerate(list.__iter__(value))
                ]
                text = "[" + ",".join(items) + "]"
                if entry.full_text() != text or entry.obj is _MISSING:
                    delta.changed[key] = text
                    entry.since = "set"
                entry.items, entry.shadow, entry.text, entry.obj = items, shadow, None, value
                if value:
                    entry.edges = (list.__getitem__(value, 0), list.__getitem__(value, -1))
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
                or len(entry.chain) >= MAX_CHAIN
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


__all__ = [
    "ADOPT_LENGTH",
    "INLINE_LIMIT",
    "Delta",
    "StateTracker",
    "TrackedDict",
    "TrackedList",
    "key_json",
]
