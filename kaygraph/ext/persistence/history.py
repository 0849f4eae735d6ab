"""Reading durable runs: listings, one run, its steps, its state at any step, its event log, forks.

Every function takes ``store``: a :class:`CheckpointStore`, a URL, or None for the configured
store (opened and closed around the call). Reads stream or page, so memory stays bounded by the
largest single state however long a run's history is, and none of them writes (a read of a
SQLite store that does not exist finds no runs and creates no file). These are the functions
the dashboard calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import math
import time
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kaygraph.core.exceptions import CheckpointCorruptError, PersistenceError, RunNotFoundError

from .abc import RUN_STATUSES, CheckpointStore, RunInfo, Serializer
from .base import check_run_id
from .errors import StoreNotFoundError
from .leases import lease_is_live, locked_error
from .records import (
    RunState,
    apply_record,
    is_snapshot_record,
    parse_record,
    resolve_state,
    snapshot_of,
    to_json,
)
from .serialization import check_serializer, decode_params, decode_state, get_serializer
from .stores import open_store

#: Records read per round trip when paging through a history.
PAGE = 200


@dataclasses.dataclass
class StepRecord:
    """One entry of a run's history: a node that completed (or the run's start, resume or end)."""

    seq: int
    #: ``start``, ``resume``, ``step`` or ``end``.
    kind: str
    #: Completed nodes so far.
    step: int
    node_id: str | None
    path: tuple[Any, ...]
    action: Any
    #: Position of the next node (ends in None when that level finished).
    next_position: tuple[Any, ...]
    #: When the entry was written (for a step: when the node ended).
    timestamp: float
    duration: float | None
    #: The shared store after this entry (None when read with ``decode=False``).
    state: dict[str, Any] | None
    params: Any
    #: How many times ``exec`` ran (1 unless it was retried).
    attempts: int = 1
    #: The run's status after this entry (``end``: the final status).
    status: str = "running"

    @property
    def started_at(self) -> float | None:
        """When the node started (``timestamp - duration``), for steps."""
        return None if self.duration is None else self.timestamp - self.duration


@dataclasses.dataclass
class RunPage:
    """One page of :func:`runs_page`: the runs, and the cursor of the next page (None: last page)."""

    runs: list[RunInfo]
    next_cursor: str | None


@dataclasses.dataclass
class StepPage:
    """One page of :func:`steps_page`; pass ``next_cursor`` as ``after`` for the next page."""

    steps: list[StepRecord]
    next_cursor: int | None


@dataclasses.dataclass
class StateAt:
    """The state of a run after one record (:func:`state_at`)."""

    run_id: str
    seq: int
    step: int
    state: dict[str, Any]
    params: dict[str, Any] | None
    #: Position of the next node.
    position: tuple[Any, ...]
    status: str


@dataclasses.dataclass
class RunEvent:
    """One entry of a run's event log (:func:`events`), in the order it was written.

    ``kind``: ``status`` (the run started, resumed or ended: see ``status``), ``node_start``,
    ``node_end``, ``item_end`` (a batch item finished), ``retry`` or ``node_error``. ``seq`` is
    the log position (read on with ``after=seq``); ``core_seq`` the core's event number.
    """

    run_id: str
    seq: int
    kind: str
    timestamp: float
    step: int
    node_id: str | None = None
    path: tuple[Any, ...] = ()
    status: str | None = None
    action: Any = None
    duration: float | None = None
    attempt: int | None = None
    index: int | None = None
    error: str | None = None
    core_seq: int | None = None


@dataclasses.dataclass
class Changes:
    """What :func:`changes` found: runs updated after the cursor, and the cursor to poll with next."""

    runs: list[RunInfo]
    cursor: float


# -- opening -------------------------------------------------------------------------------------


@contextlib.contextmanager
def opened(store: str | CheckpointStore | None, *, create: bool = False) -> Iterator[CheckpointStore | None]:
    """The store itself, or one opened from a URL / the configuration and closed afterwards.

    Yields None when a read-only open finds no store at all (a SQLite file never written).
    """
    if isinstance(store, CheckpointStore):
        yield store
        return
    try:
        target = open_store(store, create=create)
    except StoreNotFoundError:
        yield None
        return
    try:
        yield target
    finally:
        target.close()


@contextlib.contextmanager
def opened_run(
    store: str | CheckpointStore | None, run_id: str, *, create: bool = False
) -> Iterator[tuple[CheckpointStore, RunInfo]]:
    """The opened store and the (raw) row of ``run_id``; ``RunNotFoundError`` naming it when the
    store has no such run (or does not exist at all)."""
    check_run_id(run_id)
    with opened(store, create=create) as target:
        if target is None:
            raise _missing(run_id, "the store (it does not exist yet)")
        info = target.get_run(run_id)
        if info is None:
            raise _missing(run_id, target.describe())
        yield target, info


def _timestamp(value: float | _dt.datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, _dt.datetime) else value


def _missing(run_id: str, where: str) -> RunNotFoundError:
    return RunNotFoundError(
        f"no run {run_id!r} in {where}: it never started there, was deleted, or expired (persistence.ttl)",
        run_id=run_id,
    )


# -- records -------------------------------------------------------------------------------------


def _last_record(
    store: CheckpointStore, run_id: str, stop: int | None = None
) -> tuple[int, dict[str, Any]] | None:
    newest = store.read(run_id, stop=stop, limit=1, descending=True)
    if not newest:
        return None
    seq, blob = newest[0]
    return seq, parse_record(blob, run_id, seq)


def _records(
    store: CheckpointStore, run_id: str, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The parsed records ``start <= seq < stop``, read a page at a time."""
    while True:
        page = store.read(run_id, start=start, stop=stop, limit=PAGE)
        for seq, blob in page:
            yield seq, parse_record(blob, run_id, seq)
        if len(page) < PAGE:
            return
        start = page[-1][0] + 1


def _fetcher(store: CheckpointStore, run_id: str) -> Callable[[int], dict[str, Any]]:
    """``fetch(seq)``: the parsed snapshot record ``seq``, cached for one resolution."""
    cache: dict[int, dict[str, Any]] = {}

    def fetch(seq: int) -> dict[str, Any]:
        record = cache.get(seq)
        if record is None:
            found = store.read(run_id, start=seq, stop=seq + 1)
            if not found:
                raise CheckpointCorruptError(
                    f"snapshot {seq} of run {run_id!r} is referenced but missing; the run's history "
                    f"is damaged. Delete the run (kaygraph runs delete {run_id}) and start it again.",
                    run_id=run_id,
                )
            record = cache[seq] = parse_record(found[0][1], run_id, seq)
        return record

    return fetch


def fold_to(
    store: CheckpointStore, run_id: str, seq: int | None = None
) -> tuple[int, RunState, dict[str, Any]]:
    """The run state after record ``seq`` (None: the newest), that record's seq and the snapshot
    it was folded from. Reads one snapshot (with the snapshots it references) and at most
    ``snapshot_every`` records after it."""
    last = _last_record(store, run_id, None if seq is None else seq + 1)
    if last is None:
        raise CheckpointCorruptError(
            f"run {run_id!r} has no readable checkpoint; it cannot be resumed or read. Delete it "
            f"(kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        )
    last_seq, last_record = last
    try:
        if "ls" not in last_record and not is_snapshot_record(last_record):
            # Schema 1 records name no snapshot: find the newest one before it.
            last_record = {**last_record, "ls": _newest_snapshot_before(store, run_id, last_seq)}
        snapshot_seq = snapshot_of(last_seq, last_record)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointCorruptError(
            f"checkpoint record {last_seq} of run {run_id!r} is malformed (no snapshot reference); "
            f"delete the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        ) from exc
    fetch = _fetcher(store, run_id)
    try:
        snapshot = fetch(snapshot_seq)
    except CheckpointCorruptError:
        if seq is not None:
            raise PersistenceError(
                f"record {seq} of run {run_id!r} is older than the kept history (keep_snapshots): "
                "its state is no longer stored",
                run_id=run_id,
            ) from None
        raise
    run_state = RunState()
    try:
        state = resolve_state(snapshot, fetch)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointCorruptError(
            f"snapshot {snapshot_seq} of run {run_id!r} is malformed ({type(exc).__name__}: {exc}); delete "
            f"the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        ) from exc
    apply_record(run_state, snapshot, run_id, snapshot_seq, state)
    if last_seq != snapshot_seq:
        for record_seq, record in _records(store, run_id, snapshot_seq + 1, last_seq + 1):
            apply_record(run_state, record, run_id, record_seq)
    return last_seq, run_state, snapshot


def _newest_snapshot_before(store: CheckpointStore, run_id: str, seq: int) -> int:
    """The seq of the newest snapshot before record ``seq``, read backwards a page at a time."""
    stop = seq
    while True:
        page = store.read(run_id, stop=stop, limit=PAGE, descending=True)
        for found, blob in page:
            if is_snapshot_record(parse_record(blob, run_id, found)):
                return found
        if len(page) < PAGE:
            raise ValueError("no snapshot")
        stop = page[-1][0]


def _true_row(store: CheckpointStore, info: RunInfo) -> RunInfo:
    """``info`` with ``steps`` and ``updated_at`` of a running run taken from its newest record,
    since the row itself is refreshed at most once a second (and never after a crash)."""
    if info.status != "running":
        return info
    try:
        last = _last_record(store, info.run_id)
    except PersistenceError:
        return info
    if last is not None:
        record = last[1]
        steps = record.get("i")
        if type(steps) is int and steps > info.steps:
            info.steps = steps
        written = record.get("t")
        if isinstance(written, (int, float)) and written > info.updated_at:
            info.updated_at = float(written)
    return info


# -- runs ----------------------------------------------------------------------------------------


def list_runs(
    store: str | CheckpointStore | None = None,
    *,
    graph_name: str | None = None,
    status: str | None = None,
    since: float | _dt.datetime | None = None,
    until: float | _dt.datetime | None = None,
    limit: int | None = None,
) -> list[RunInfo]:
    """Runs in ``store``, newest first, filtered by graph name, status and creation time
    (``since`` inclusive, ``until`` exclusive; datetimes or epoch seconds). See :func:`runs_page`
    for a paged listing."""
    _check_status(status)
    with opened(store) as target:
        if target is None:
            return []
        runs = target.list_runs(
            graph_name=graph_name,
            status=status,
            since=_timestamp(since),
            until=_timestamp(until),
            limit=limit,
        )
        return [_true_row(target, info) for info in runs]


def _check_status(status: str | None) -> None:
    if status is not None and status not in RUN_STATUSES:
        raise PersistenceError(f"unknown run status {status!r}; valid: {', '.join(RUN_STATUSES)}")


def _cursor_text(info: RunInfo) -> str:
    return f"{info.created_at!r}|{info.run_id}"


def _parse_cursor(cursor: str) -> tuple[float, str]:
    created, separator, run_id = str(cursor).partition("|")
    try:
        if not separator:
            raise ValueError("no separator")
        return float(created), run_id
    except ValueError:
        raise PersistenceError(
            f"invalid runs cursor {cursor!r}: pass the next_cursor of a previous page unchanged"
        ) from None


def runs_page(
    store: str | CheckpointStore | None = None,
    *,
    graph_name: str | None = None,
    status: str | None = None,
    since: float | _dt.datetime | None = None,
    until: float | _dt.datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> RunPage:
    """One page of runs, newest first (keyset pagination: a page never skips nor repeats a run
    however many runs start meanwhile). Pass the page's ``next_cursor`` as ``cursor`` for the next."""
    _check_status(status)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise PersistenceError(f"runs_page limit must be an int >= 1, got {limit!r}")
    before = None if cursor is None else _parse_cursor(cursor)
    with opened(store) as target:
        if target is None:
            return RunPage([], None)
        runs = target.list_runs(
            graph_name=graph_name,
            status=status,
            since=_timestamp(since),
            until=_timestamp(until),
            limit=limit + 1,
            before=before,
        )
        more = len(runs) > limit
        runs = [_true_row(target, info) for info in runs[:limit]]
        return RunPage(runs, _cursor_text(runs[-1]) if more else None)


def count_runs(
    store: str | CheckpointStore | None = None,
    *,
    graph_name: str | None = None,
    since: float | _dt.datetime | None = None,
    until: float | _dt.datetime | None = None,
) -> dict[str, int]:
    """How many runs have each status (``running``, ``succeeded``, ``failed``, ``cancelled``,
    ``pending``) plus ``total``, filtered like :func:`list_runs`."""
    with opened(store) as target:
        counts = dict.fromkeys(RUN_STATUSES, 0)
        if target is not None:
            counts.update(
                target.count_runs(graph_name=graph_name, since=_timestamp(since), until=_timestamp(until))
            )
        counts["total"] = sum(counts[status] for status in RUN_STATUSES)
        return counts


def get_run(store: str | CheckpointStore | None, run_id: str) -> RunInfo:
    """The metadata of ``run_id`` (status, timing, steps, error and traceback, graph_ref, parent);
    ``RunNotFoundError`` naming it if the store has no such run."""
    with opened_run(store, run_id) as (target, info):
        return _true_row(target, info)


def changes(
    store: str | CheckpointStore | None = None, cursor: float = 0.0, *, limit: int | None = 500
) -> Changes:
    """Runs whose row changed after ``cursor`` (start with 0.0) and the cursor to poll with next:
    one cheap indexed query, so one dashboard process can poll once for all its clients. A run
    row changes when the run starts, ends, starts a slow node, and at least once a second while it
    writes records."""
    with opened(store) as target:
        if target is None:
            return Changes([], cursor)
        runs = target.changed_since(float(cursor), limit=limit)
        if limit is not None and len(runs) >= limit:
            # A full page: runs updated at the same instant as its last one may be beyond it, and
            # the next poll (after that instant) would skip them. Leave that instant to the next
            # poll, or, when the whole page shares it, take every run updated then.
            last = runs[-1].updated_at
            earlier = [info for info in runs if info.updated_at < last]
            runs = earlier or [
                info
                for info in target.changed_since(math.nextafter(last, -math.inf))
                if info.updated_at == last
            ]
        newest = max((info.updated_at for info in runs), default=float(cursor))
        return Changes([_true_row(target, info) for info in runs], newest)


def wait_for_change(store: CheckpointStore, timeout: float = 1.0) -> bool:
    """Block until a run of ``store`` may have changed (True) or ``timeout`` seconds passed:
    pushed by Redis pub/sub and PostgreSQL LISTEN/NOTIFY (and in-process for the memory store);
    SQLite just waits. Follow it with :func:`changes` to see what changed."""
    return store.wait_for_change(timeout)


# -- steps and state -----------------------------------------------------------------------------


def _entry(seq: int, record: Mapping[str, Any], run_state: RunState, state: Any, params: Any) -> StepRecord:
    path = tuple(record.get("p", ()))
    status = record.get("st", "running")
    return StepRecord(
        seq=seq,
        kind=record["k"],
        step=run_state.steps,
        node_id=str(path[-1]) if path else None,
        path=path,
        action=record.get("a"),
        next_position=run_state.position,
        timestamp=record["t"],
        duration=record.get("dt"),
        state=state,
        params=params,
        attempts=int(record.get("at") or 1),
        status=status,
    )


def iter_steps(
    store: str | CheckpointStore | None,
    run_id: str,
    *,
    serializer: str | Serializer | None = None,
    decode: bool = True,
    after: int | None = None,
) -> Iterator[StepRecord]:
    """The kept history of ``run_id`` as a stream: start/resume/step/end entries (batch items and
    events are left out), each with the shared state after it when ``decode`` (else None).

    Memory stays bounded by one state however long the history is. ``after`` starts after that
    record. How far back it goes is bounded by ``keep_snapshots``. States are decoded only with
    ``serializer`` (default: JSON), never with the serializer named in the store.
    """
    decoder = get_serializer(serializer)
    with opened_run(store, run_id) as (target, info):
        if decode:
            check_serializer(info, decoder)
        run_state: RunState | None = None
        start = 0
        if after is not None:
            if decode:
                _, run_state, _ = fold_to(target, run_id, after)
            else:
                run_state = RunState()
            start = after + 1
        previous = start - 1
        for seq, record in _records(target, run_id, start):
            kind = record["k"]
            snapshot = is_snapshot_record(record)
            gap, previous = seq != previous + 1, seq
            if not decode:
                record = {key: value for key, value in record.items() if key not in _STATE_FIELDS}
            if run_state is None or (gap and decode):
                if not snapshot:
                    run_state = None
                    continue  # records before the oldest kept snapshot were pruned
                # The first snapshot, or one kept (for its references) after pruned records.
                run_state = RunState()
                state = resolve_state(record, _fetcher(target, run_id)) if decode else {}
                apply_record(run_state, record, run_id, seq, state)
            elif kind != "item" or decode:
                apply_record(run_state, record, run_id, seq, None if decode or not snapshot else {})
            if kind in ("start", "resume", "step", "end"):
                yield _decoded(decoder, seq, record, run_state, run_id, decode)


_STATE_FIELDS = frozenset(("u", "ap", "d", "s", "r"))


def _decoded(
    decoder: Serializer, seq: int, record: Mapping[str, Any], run_state: RunState, run_id: str, decode: bool
) -> StepRecord:
    if not decode:
        return _entry(seq, record, run_state, None, None)
    return _entry(
        seq,
        record,
        run_state,
        decode_state(decoder, run_state.state, run_id=run_id, seq=seq),
        decode_params(decoder, run_state.params, run_id=run_id, seq=seq),
    )


def steps(
    store: str | CheckpointStore | None,
    run_id: str,
    *,
    serializer: str | Serializer | None = None,
    decode: bool = True,
) -> list[StepRecord]:
    """:func:`iter_steps` as a list (every state in memory at once: prefer :func:`iter_steps`,
    :func:`steps_page` and :func:`state_at` for long runs)."""
    return list(iter_steps(store, run_id, serializer=serializer, decode=decode))


def steps_page(
    store: str | CheckpointStore | None, run_id: str, *, after: int | None = None, limit: int = 100
) -> StepPage:
    """One page of a run's history without states (node id, path, action, duration, attempts,
    timestamps): ``after`` is the previous page's ``next_cursor``. Fetch a step's state with
    :func:`state_at` (``seq=step.seq``)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise PersistenceError(f"steps_page limit must be an int >= 1, got {limit!r}")
    page: list[StepRecord] = []
    last = after
    for entry in iter_steps(store, run_id, decode=False, after=after):
        page.append(entry)
        last = entry.seq
        if len(page) > limit:
            break
    more = len(page) > limit
    page = page[:limit]
    return StepPage(page, page[-1].seq if more and page else None if not more else last)


def _seq_of_step(store: CheckpointStore, run_id: str, step: int) -> int:
    """The seq of the record after which ``step`` nodes had completed (binary search on ``i``)."""
    oldest = store.read(run_id, limit=1)
    newest = _last_record(store, run_id)
    if not oldest or newest is None:
        raise _missing(run_id, store.describe())
    low, high = oldest[0][0], newest[0]
    if int(newest[1].get("i", 0)) < step:
        raise PersistenceError(f"run {run_id!r} has {newest[1].get('i', 0)} steps, not {step}", run_id=run_id)
    while low < high:  # the first record whose i reaches step
        middle = (low + high) // 2
        found = store.read(run_id, start=middle, limit=1)
        seq, record = found[0][0], parse_record(found[0][1], run_id, found[0][0])
        if int(record.get("i", 0)) >= step:
            high = seq if seq < high else middle
        else:
            low = seq + 1
    return low


def state_at(
    store: str | CheckpointStore | None,
    run_id: str,
    *,
    seq: int | None = None,
    step: int | None = None,
    serializer: str | Serializer | None = None,
) -> StateAt:
    """The shared state of ``run_id`` after record ``seq`` (a :class:`StepRecord`'s ``seq``), or
    after ``step`` completed nodes, or (neither) the latest. Reads one snapshot, the snapshots it
    references and at most ``snapshot_every`` records: fast at any point of a long run."""
    decoder = get_serializer(serializer)
    with opened_run(store, run_id) as (target, info):
        check_serializer(info, decoder)
        if step is not None:
            seq = _seq_of_step(target, run_id, step)
        last_seq, run_state, _ = fold_to(target, run_id, seq)
        return StateAt(
            run_id=run_id,
            seq=last_seq,
            step=run_state.steps,
            state=decode_state(decoder, run_state.state, run_id=run_id, seq=last_seq),
            params=decode_params(decoder, run_state.params, run_id=run_id, seq=last_seq),
            position=run_state.position,
            status=run_state.status,
        )


# -- events --------------------------------------------------------------------------------------

_EVENT_KINDS = {
    "start": "status",
    "resume": "status",
    "end": "status",
    "ns": "node_start",
    "step": "node_end",
    "item": "item_end",
    "rt": "retry",
    "ne": "node_error",
}


def events(
    store: str | CheckpointStore | None, run_id: str, *, after: int = -1, limit: int = 500
) -> list[RunEvent]:
    """The run's event log after position ``after`` (-1: from the oldest kept), at most ``limit``
    events, oldest first. Poll with ``after`` = the last event's ``seq``. Reading it decodes no
    state, so it needs neither the serializer nor the classes in the state."""
    check_run_id(run_id)
    with opened(store) as target:
        if target is None:
            raise _missing(run_id, "the store (it does not exist yet)")
        page = target.read(run_id, start=after + 1, limit=limit)
        if not page and target.get_run(run_id) is None:
            raise _missing(run_id, target.describe())
        found = []
        for seq, blob in page:
            record = parse_record(blob, run_id, seq)
            kind = record.get("k")
            path = tuple(record.get("p", ()))
            found.append(
                RunEvent(
                    run_id=run_id,
                    seq=seq,
                    kind=_EVENT_KINDS.get(str(kind), str(kind)),
                    timestamp=record.get("t", 0.0),
                    step=int(record.get("i", 0)),
                    node_id=str(path[-1]) if path else None,
                    path=path,
                    status=record.get("st", "running") if kind in ("start", "resume", "end") else None,
                    action=record.get("a"),
                    duration=record.get("dt"),
                    attempt=record.get("at"),
                    index=record.get("j"),
                    error=record.get("e"),
                    core_seq=record.get("q"),
                )
            )
        return found


def request_cancel(
    store: str | CheckpointStore | None, run_id: str, reason: str = "cancel requested"
) -> bool:
    """Ask the process running ``run_id`` to cancel it (from any process: a dashboard, the CLI).

    Sets ``RunInfo.cancel_requested``; the writer checks it with its row refresh (about once a
    second, and before every slow node) and cancels its ``CancelToken``, so the run ends as
    ``cancelled`` and can be resumed. False when the run is not running (nothing to cancel).
    """
    with opened_run(store, run_id) as (target, info):
        if info.status != "running":
            return False
        return target.update_run(run_id, {"cancel_requested": str(reason)[:500] or "cancel requested"})


# -- delete and fork -----------------------------------------------------------------------------


def delete_run(store: str | CheckpointStore | None, run_id: str, *, force: bool = False) -> bool:
    """Erase every trace of ``run_id`` (metadata, checkpoints, index entries); False if absent.

    Refuses with ``RunLockedError`` while a live process is writing the run, unless ``force``.
    """
    check_run_id(run_id)
    with opened(store) as target:
        if target is None:
            return False
        try:
            info = target.get_run(run_id)
        except CheckpointCorruptError:
            if not force:  # its lease cannot be read: erase it only when told to
                raise
            info = None
        if info is not None and not force and lease_is_live(info):
            raise locked_error(info)
        # Also when the run row is gone: erase any record left behind without one.
        return target.delete_run(run_id)


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


#: Value for a key of ``fork_run(patch=...)``: delete that key from the forked state.
DELETE: Any = _Delete()


def fork_run(
    store: str | CheckpointStore | None,
    run_id: str,
    *,
    seq: int | None = None,
    step: int | None = None,
    patch: Mapping[str, Any] | None = None,
    new_run_id: str | None = None,
    serializer: str | Serializer | None = None,
) -> RunInfo:
    """A new run starting from ``run_id``'s state after record ``seq`` (or ``step`` nodes; neither:
    the latest), with ``patch`` applied to the top-level keys (``DELETE`` removes a key).

    The fork is stored with status ``pending`` and ``parent_run_id`` / ``parent_seq`` naming where
    it came from; nothing runs until ``durable(graph, store).resume(new_run_id)`` (or
    ``kaygraph runs resume``). Returns the new run's info.
    """
    from .checkpointer import Checkpointer, WriterState
    from .leases import drop_owner, new_owner

    if new_run_id is not None:
        check_run_id(new_run_id)
    decoder = get_serializer(serializer)
    with opened_run(store, run_id) as (target, info):
        check_serializer(info, decoder)
        if step is not None:
            seq = _seq_of_step(target, run_id, step)
        last_seq, run_state, _ = fold_to(target, run_id, seq)
        shared = decode_state(decoder, run_state.state, run_id=run_id, seq=last_seq)
        for key, value in (patch or {}).items():
            if value is DELETE:
                shared.pop(key, None)
            else:
                shared[key] = value
        writer = WriterState()
        writer.position, writer.last_action, writer.steps = (
            run_state.position,
            run_state.last_action,
            run_state.steps,
        )
        writer.params_text = None if run_state.params is None else to_json(run_state.params)
        writer.items = {
            path: {index: to_json(value) for index, value in done.items()}
            for path, done in run_state.items.items()
        }
        settings = types.SimpleNamespace(
            store=target,
            serializer=decoder,
            snapshot_every=100,
            keep_snapshots=None,
            lease_seconds=1.0,
            live_threshold=None,
            ttl=None,
        )
        new_id = (
            new_run_id or f"{run_id[:150]}-fork-{time.strftime('%H%M%S')}-{__import__('os').urandom(2).hex()}"
        )
        owner = new_owner()
        try:
            first = Checkpointer(settings, new_id, owner, writer).first_snapshot("start", shared)
        finally:
            drop_owner(owner)
        now = time.time()
        forked = RunInfo(
            run_id=new_id,
            graph_name=info.graph_name,
            status="pending",
            created_at=now,
            updated_at=now,
            steps=run_state.steps,
            serializer=decoder.name,
            graph_ref=info.graph_ref,
            parent_run_id=run_id,
            parent_seq=last_seq,
        )
        if not target.create_run(forked, first):
            raise PersistenceError(
                f"cannot fork into run {new_id!r}: a run with that id exists", run_id=new_id
            )
        return forked


__all__ = [
    "DELETE",
    "Changes",
    "RunEvent",
    "RunPage",
    "StateAt",
    "StepPage",
    "StepRecord",
    "changes",
    "count_runs",
    "delete_run",
    "events",
    "fold_to",
    "fork_run",
    "get_run",
    "iter_steps",
    "list_runs",
    "opened",
    "opened_run",
    "request_cancel",
    "runs_page",
    "state_at",
    "steps",
    "steps_page",
    "wait_for_change",
]
