"""Shared logic of every store: the checkpoint format, state deltas, resume positions and leases.

Checkpoint records
    Each record is one JSON object, optionally zlib-compressed, framed as ``kind byte + CRC-32 +
    payload`` so a truncated or altered record is detected (``CheckpointCorruptError``) instead of
    resuming from garbage. Every record carries the schema version ``v``.

    Kinds: ``start`` and ``resume``, ``step`` (a node completed: the top-level keys of ``shared``
    that changed or were deleted, the next position, the action), ``item`` (one batch item
    finished, with its result) and ``end``. A record marked ``"f":1`` is a snapshot: it carries
    the full state, params, position and unfinished batch items. Runs start and resume with a
    snapshot, and every ``snapshot_every``-th record is one; only the last ``keep_snapshots``
    snapshots and the records after the oldest of them are kept, which is always enough to resume
    and keeps storage bounded however long a run loops.

Leases
    A run is written by one process at a time. The lease owner is ``host:pid:token``; the lease
    is live while that process is alive (checked with ``kill(pid, 0)`` on the same host, so a
    SIGKILLed writer can be resumed at once) or, for another host, until ``lease_expires_at``.
    Record numbers fence writers: a second writer that slipped past the lease collides on its
    next record and stops, so histories never interleave.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from kaygraph.core.exceptions import (
    CheckpointCorruptError,
    MissingExtraError,
    PersistenceError,
    RunLockedError,
    RunNotFoundError,
    SerializationError,
)

from .abc import ANY_OWNER, CheckpointStore, RunInfo, Serializer

#: Version of the record format below; records with a higher version are refused.
SCHEMA_VERSION = 1

logger = logging.getLogger("kaygraph.ext.persistence")
_T = TypeVar("_T")


#: JSON text of a string (not ASCII-escaped).
json_string: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


def _compact_encoder() -> Callable[[Any], str]:
    """Compact, non-ASCII-escaping JSON text of plain values, as fast as the C encoder allows.

    ``json.dumps`` rebuilds its encoder on every call; checkpoints encode a few small values per
    step, so that setup would dominate. The C encoder is built once here instead.
    """
    from json import encoder as json_encoder

    make = getattr(json_encoder, "c_make_encoder", None)
    basestring = json_string
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def unsupported(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    iterencode = make(None, unsupported, basestring, None, ":", ",", False, False, True)
    join = "".join

    def to_json(value: Any) -> str:
        if type(value) is str:
            return str(basestring(value))
        return join(iterencode(value, 0))

    return to_json


#: Compact JSON text of plain values (str, int, float, bool, None, list, dict with str keys).
to_json = _compact_encoder()


def action_json(action: Any) -> str:
    """JSON text of an action: routing actions are strings or None; anything else is kept as its repr."""
    if type(action) is str:
        return str(json_string(action))
    if action is None:
        return "null"
    try:
        return str(to_json(action))
    except (TypeError, ValueError):
        return str(json_string(repr(action)))


_PLAIN = b"J"
_ZLIB = b"Z"
_COMPRESS_ABOVE = 2048
_HEADER = 5


def missing_extra(thing: str, package: str) -> MissingExtraError:
    """The error a backend module raises when its driver is not installed."""
    return MissingExtraError(
        f"{thing} needs the {package!r} package, which is not installed. Install it with: "
        "pip install 'kaygraph[persistence]'",
        extra="persistence",
        name=package,
    )


# -- record framing ------------------------------------------------------------------------------


def frame(payload: str) -> bytes:
    """A record's JSON text as stored bytes: compressed when large, with a CRC-32 to detect damage."""
    # surrogatepass: a str with a lone surrogate (from a lossy decode) is a valid Python value and
    # round-trips exactly; unframe decodes the same way.
    data = payload.encode("utf-8", "surrogatepass")
    kind = _PLAIN
    if len(data) > _COMPRESS_ABOVE:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data):
            data, kind = packed, _ZLIB
    return kind + zlib.crc32(data).to_bytes(4, "big") + data


def unframe(blob: bytes, run_id: str, seq: int) -> dict[str, Any]:
    """The parsed record; ``CheckpointCorruptError`` naming the run and record when it is damaged."""
    try:
        blob = bytes(blob)
        kind, body = blob[:1], blob[_HEADER:]
        if kind not in (_PLAIN, _ZLIB) or len(blob) < _HEADER:
            raise ValueError(f"unknown record kind {kind!r}")
        if zlib.crc32(body) != int.from_bytes(blob[1:_HEADER], "big"):
            raise ValueError("checksum mismatch (truncated or altered)")
        if kind == _ZLIB:
            body = zlib.decompress(body)
        record: dict[str, Any] = json.loads(body.decode("utf-8", "surrogatepass"))
        version = record["v"]
        if type(version) is not int:
            raise ValueError(f"schema version {version!r} is not an integer")
    except Exception as exc:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} is corrupt ({exc}); the run cannot be "
            f"resumed from it. Delete the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        ) from exc
    if version > SCHEMA_VERSION:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} has schema version {version}, newer than this "
            f"kaygraph understands ({SCHEMA_VERSION}); upgrade kaygraph to resume it.",
            run_id=run_id,
        )
    return record


def join_encoded(encoded: Mapping[Any, str]) -> str:
    """A JSON object from already-encoded values (no second encoding pass)."""
    return "{" + ",".join(f"{json_string(str(key))}:{text}" for key, text in encoded.items()) + "}"


# -- run state: what a run looked like after a record --------------------------------------------


class RunState:
    """The fold of a run's records: state, params, position and finished batch items.

    Used by the writer (values are encoded JSON texts) and by readers (values are parsed JSON),
    so "what resuming means" is written exactly once.
    """

    __slots__ = ("action", "error", "items", "last_action", "params", "position", "state", "status", "steps")

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.params: Any = None
        #: Next node, from the top graph down (see ``kaygraph.core.events.ResumePoint``).
        self.position: tuple[Any, ...] = ()
        self.last_action: Any = None
        #: Finished batch items by the path of their node: ``{path: {index: result}}``.
        self.items: dict[tuple[Any, ...], dict[int, Any]] = {}
        self.steps = 0
        self.status = "running"
        self.action: Any = None
        self.error: str | None = None

    def apply(self, record: Mapping[str, Any]) -> None:
        """Advance by one parsed record (reader side)."""
        kind = record["k"]
        if "s" in record:  # a snapshot: the complete run state after this record
            self.state = dict(record["s"])
            self.params = record.get("m")
            self.position = tuple(record["x"])
            self.last_action = record.get("la")
            self.items = {tuple(path): {int(i): r for i, r in done} for path, done in record["I"]}
            self.steps = record["i"]
        elif kind == "item":
            self.items.setdefault(tuple(record["p"]), {})[record["j"]] = record.get("r")
        elif kind == "step":
            self.advance(
                tuple(record["p"]),
                record.get("u"),
                record.get("d"),
                position=record.get("x"),
                action=record.get("a"),
                params=record.get("m"),
            )
            self.steps = record["i"]
        if kind == "end":
            self.change_state(record.get("u"), record.get("d"))
            self.status = record["st"]
            self.action = record.get("a")
            self.error = record.get("e")

    def advance(
        self,
        path: tuple[Any, ...],
        changed: Mapping[str, Any] | None,
        deleted: Any,
        *,
        position: Any = None,
        action: Any = None,
        params: Any = None,
    ) -> None:
        """Node ``path`` completed: apply its state changes; ``position`` is None inside a parallel
        batch graph, whose position stays at that graph."""
        self.change_state(changed, deleted)
        self._forget_items(path)
        if position is not None:
            self.position = tuple(position)
            self.last_action = action if position[-1] is None else None
        if params is not None:
            self.params = params

    def change_state(self, changed: Mapping[str, Any] | None, deleted: Any) -> None:
        """Set the top-level keys in ``changed`` and drop those in ``deleted``."""
        if changed:
            self.state.update(changed)
        for key in deleted or ():
            self.state.pop(key, None)

    def _forget_items(self, path: tuple[Any, ...]) -> None:
        """A node finished: items recorded for it (and for nodes inside it) are no longer pending."""
        if not self.items:
            return
        depth = len(path)
        for key in [key for key in self.items if key[:depth] == path]:
            del self.items[key]

    def snapshot_fields(self, params_text: str | None) -> dict[str, str]:
        """The raw JSON fields that make a record a snapshot (writer side: values are encoded texts)."""
        items = ",".join(
            f"[{to_json(list(path))},[" + ",".join(f"[{i},{text}]" for i, text in done.items()) + "]]"
            for path, done in self.items.items()
        )
        fields = {
            "i": str(self.steps),
            "x": to_json(list(self.position)),
            "la": to_json(self.last_action),
            "I": f"[{items}]",
            "s": join_encoded(self.state),
        }
        if params_text is not None:
            fields["m"] = params_text
        return fields


def record_json(kind: str, fields: Mapping[str, Any], raw: Mapping[str, str] | None = None) -> str:
    """A record's JSON text: ``fields`` are plain values, ``raw`` already-encoded JSON texts.

    Snapshots carry ``"f":1`` among their first bytes, so the newest one is found without parsing.
    """
    head: dict[str, Any] = {"v": SCHEMA_VERSION, "k": kind}
    if raw is not None and "s" in raw:
        head["f"] = 1
    head.update(fields)
    text = to_json(head)
    if raw:
        text = text[:-1] + "".join(f',"{key}":{value}' for key, value in raw.items()) + "}"
    return text


def is_snapshot(blob: bytes) -> bool:
    """Whether a stored record is a snapshot, from its first bytes."""
    return b'"f":1' in _peek(blob)


def _peek(blob: bytes) -> bytes:
    """The first bytes of a record's JSON, enough to see whether it is a snapshot without parsing it."""
    if blob[:1] == _ZLIB:
        try:
            return zlib.decompressobj().decompress(bytes(blob[_HEADER:]), 40)
        except zlib.error:
            return b""
    return bytes(blob[_HEADER : _HEADER + 40])


def fold(store: CheckpointStore, run_id: str) -> Iterator[tuple[int, dict[str, Any], RunState]]:
    """Every stored record of ``run_id`` with the run state after it, from the oldest kept snapshot."""
    run_state = RunState()
    started = False
    for seq, blob in store.load(run_id):
        record = unframe(blob, run_id, seq)
        if not started:
            if "s" not in record:
                continue  # the records before the oldest kept snapshot were pruned
            started = True
        apply_record(run_state, record, run_id, seq)
        yield seq, record, run_state


def apply_record(run_state: RunState, record: Mapping[str, Any], run_id: str, seq: int) -> None:
    """``run_state.apply(record)``; ``CheckpointCorruptError`` naming the run and record if the
    record does not have the structure this version writes."""
    try:
        run_state.apply(record)
    except Exception as exc:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} is malformed ({type(exc).__name__}: {exc}); "
            f"the run cannot be resumed from it. Delete the run (kaygraph runs delete {run_id}) and "
            "start it again.",
            run_id=run_id,
        ) from exc


def latest_state(store: CheckpointStore, run_id: str) -> tuple[int, RunState, list[int]]:
    """The run state after the newest record, that record's seq, and the seqs of the kept snapshots.

    Folds from the newest snapshot only, so resuming reads at most ``snapshot_every`` records.
    """
    records = store.load(run_id)
    snapshots = [seq for seq, blob in records if is_snapshot(blob)]
    if not snapshots:
        raise CheckpointCorruptError(
            f"run {run_id!r} has no readable checkpoint snapshot; it cannot be resumed. Delete it "
            f"(kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        )
    start = next(index for index, (seq, _) in enumerate(records) if seq == snapshots[-1])
    run_state = RunState()
    for seq, blob in records[start:]:
        apply_record(run_state, unframe(blob, run_id, seq), run_id, seq)
    return records[-1][0], run_state, snapshots


# -- state deltas --------------------------------------------------------------------------------


_IMMUTABLE = (str, int, float, bool, type(None), bytes)
_MISSING = object()


class StateTracker:
    """Encodes ``shared`` key by key and reports only the top-level keys whose encoding changed.

    Immutable values that are the very same object as last time are not encoded again, so the
    cost of a step follows what it changed for the common string/number values.
    """

    def __init__(self, serializer: Serializer) -> None:
        self.serializer = serializer
        self.encoded: dict[str, str] = {}
        self._objects: dict[str, Any] = {}

    def diff(self, shared: Any) -> tuple[dict[str, str], list[str]]:
        """``(changed keys -> new text, deleted keys)`` since the previous call; remembers the new state."""
        if not isinstance(shared, dict):
            raise SerializationError(
                f"cannot checkpoint a shared store of type {type(shared).__name__}: durable runs need "
                "a dict (its top-level keys are checkpointed one by one). Wrap the value in a dict.",
                key_path="shared",
            )
        encoded, objects = self.encoded, self._objects
        changed: dict[str, str] = {}
        encode = self.serializer.encode
        for key, value in shared.items():
            if type(key) is not str:
                raise SerializationError(
                    f"cannot checkpoint shared[{key!r}]: top-level keys of the shared store must be "
                    f"strings, got {type(key).__name__}. Use a string key.",
                    key_path=f"shared[{key!r}]",
                )
            if type(value) in _IMMUTABLE and objects.get(key, _MISSING) is value:
                continue
            text = encode(value, f"shared[{key!r}]")
            if encoded.get(key) != text:
                changed[key] = text
                encoded[key] = text
            objects[key] = value
        # Every key of `shared` is in `encoded` now, so extra entries are exactly the deleted keys.
        deleted = [key for key in encoded if key not in shared] if len(encoded) > len(shared) else []
        for key in deleted:
            del encoded[key]
            objects.pop(key, None)
        return changed, deleted


# -- leases --------------------------------------------------------------------------------------

_HOST = socket.gethostname()
_local_owners: set[str] = set()
_local_owners_lock = threading.Lock()


def _process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, Linux), so a reused pid is not mistaken
    for the lease holder; empty where ``/proc`` is unavailable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def new_owner() -> str:
    """A fresh lease owner token for this process: ``host:pid:process-start:random``."""
    pid = os.getpid()
    owner = f"{_HOST}:{pid}:{_process_start(pid)}:{os.urandom(6).hex()}"
    with _local_owners_lock:
        _local_owners.add(owner)
    return owner


def drop_owner(owner: str) -> None:
    """This process no longer writes under ``owner``."""
    with _local_owners_lock:
        _local_owners.discard(owner)


def lease_is_live(info: RunInfo, now: float | None = None) -> bool:
    """Whether the lease on ``info`` still protects a writer.

    Same host: live exactly while the owning process is alive (same pid and start time; in this
    process, while the token is in use), so a killed writer's run can be resumed immediately.
    Another host: live until ``lease_expires_at``.
    """
    owner = info.lease_owner
    if not owner:
        return False
    host, pid_text, started = [*owner.split(":", 3), "", ""][:3]
    if host == _HOST and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return owner in _local_owners
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # alive, owned by another user
        return not started or _process_start(pid) in ("", started)
    expires = info.lease_expires_at
    return expires is not None and expires > (time.time() if now is None else now)


def locked_error(info: RunInfo) -> RunLockedError:
    """The error for a run whose lease another live writer holds."""
    expires = info.lease_expires_at
    until = f" (lease expires {time.strftime('%H:%M:%S', time.localtime(expires))})" if expires else ""
    return RunLockedError(
        f"run {info.run_id!r} is being written by another process ({info.lease_owner}){until}. Wait for "
        "it to finish, or stop that process and resume the run; two writers never share a run.",
        run_id=info.run_id,
    )


def stale_writer_error(run_id: str, seq: int) -> RunLockedError:
    """Raised by stores when record ``seq`` exists already: another writer took the run over."""
    return RunLockedError(
        f"checkpoint {seq} of run {run_id!r} was already written by another process, which took the "
        "run over (its lease had expired). This writer stops so the history is not interleaved.",
        run_id=run_id,
    )


def deleted_run_error(run_id: str) -> RunNotFoundError:
    """Raised by stores when a writer appends to a run that was deleted meanwhile."""
    return RunNotFoundError(
        f"run {run_id!r} was deleted while this process was writing it (delete_run(force=True) or "
        "expiry); this writer stops without storing anything more. Start the run again if it is "
        "still needed.",
        run_id=run_id,
    )


def lost_lease_error(run_id: str, seq: int) -> RunLockedError:
    """Raised by stores when the writer of record ``seq`` no longer holds the run's lease."""
    return RunLockedError(
        f"cannot write checkpoint {seq} of run {run_id!r}: this process no longer holds the run's "
        "lease (another process took the run over). This writer stops so the history is not "
        "interleaved.",
        run_id=run_id,
    )


def claim(store: CheckpointStore, info: RunInfo, owner: str, lease_seconds: float) -> bool:
    """Take the lease of the existing run ``info`` for ``owner``; RunLockedError if a live writer has it.

    Returns False if the run disappeared meanwhile (deleted or expired).
    """
    for _ in range(5):
        if lease_is_live(info):
            raise locked_error(info)
        now = time.time()
        changes = {
            "lease_owner": owner,
            "lease_expires_at": now + lease_seconds,
            "status": "running",
            "updated_at": now,
            "expires_at": None,
            "error": None,
        }
        if store.update_run(info.run_id, changes, if_owner=info.lease_owner):
            return True
        current = store.get_run(info.run_id)
        if current is None:
            return False
        info = current
    raise locked_error(info)


def release(store: CheckpointStore, run_id: str, owner: str, changes: Mapping[str, Any]) -> None:
    """Give up the lease of ``owner`` (if it still has it), applying the final ``changes``."""
    try:
        store.update_run(run_id, {**changes, "lease_owner": None, "lease_expires_at": None}, if_owner=owner)
    finally:
        drop_owner(owner)


def purge_quietly(store: CheckpointStore) -> None:
    """Cleanup on write (before a new run is stored): delete expired runs, but never make the
    write that triggered it fail; a failure is logged as a warning instead."""
    try:
        store.purge_expired()
    except Exception as exc:
        logger.warning("could not delete expired runs from %s: %r", store.describe(), exc)


def select_runs(
    runs: list[RunInfo],
    *,
    graph_name: str | None,
    status: str | None,
    since: float | None,
    until: float | None,
    limit: int | None,
) -> list[RunInfo]:
    """Filter and order runs in Python, for stores without a query language."""
    selected = [
        info
        for info in runs
        if (graph_name is None or info.graph_name == graph_name)
        and (status is None or info.status == status)
        and (since is None or info.created_at >= since)
        and (until is None or info.created_at < until)
    ]
    selected.sort(key=lambda info: info.created_at, reverse=True)
    return selected if limit is None else selected[:limit]


def check_run_fields(changes: Mapping[str, Any]) -> None:
    """Refuse changes to fields a :class:`RunInfo` does not have (a bug in the caller)."""
    unknown = set(changes) - set(RunInfo.FIELDS)
    if unknown:
        raise PersistenceError(f"unknown run fields {sorted(unknown)}; valid: {RunInfo.FIELDS}")


# -- SQL stores ----------------------------------------------------------------------------------


class SQLStore(CheckpointStore):
    """The SQL of ``SQLiteStore`` and ``PostgresStore``: two tables, ``runs`` and ``checkpoints``.

    Subclasses provide the connection handling (:meth:`_transaction`), the placeholder style and
    the column types; every statement is written here once. Each operation runs through
    :meth:`_run`, which retries it once on a fresh connection when a store reports that its
    connection died (:meth:`_reconnect_after`).
    """

    placeholder = "?"
    blob_type = "BLOB"
    table_suffix = ""
    table_prefix = "kaygraph_"
    runs_table = "kaygraph_runs"
    checkpoints_table = "kaygraph_checkpoints"
    #: Appended to the run-row read of :meth:`append`, so a concurrent delete waits for the append
    #: (PostgreSQL: `` FOR NO KEY UPDATE``; SQLite serializes writers anyway).
    row_lock = ""

    def set_tables(self, table_prefix: str, qualifier: str = "") -> None:
        """Name the tables ``<qualifier><table_prefix>runs`` and ``...checkpoints``."""
        self.table_prefix = table_prefix
        self.runs_table = f"{qualifier}{table_prefix}runs"
        self.checkpoints_table = f"{qualifier}{table_prefix}checkpoints"

    def _transaction(self, write: bool = True, *, single: bool = False) -> Any:
        """A context manager yielding a cursor; commits on success, rolls back on error.

        ``write=False`` marks read-only work, which SQLite runs without taking the write lock.
        ``single=True`` promises one write statement, atomic by itself: SQLite then runs it in
        autocommit mode (one statement instead of BEGIN, INSERT, COMMIT on every step).
        """
        raise NotImplementedError

    def _is_duplicate(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a primary-key violation."""
        raise NotImplementedError

    def _reconnect_after(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection died and a new one is now open (so retry once)."""
        return False

    def _run(self, work: Callable[[Any, bool], _T], *, write: bool = True, single: bool = False) -> _T:
        """``work(cursor, retried)`` in one transaction; once more on a new connection if the
        connection died. Every operation is written so that running it again is safe."""
        try:
            with self._transaction(write, single=single) as cursor:
                return work(cursor, False)
        except Exception as exc:
            if not self._reconnect_after(exc):
                raise
        with self._transaction(write, single=single) as cursor:
            return work(cursor, True)

    def schema_statements(self) -> list[str]:
        """CREATE statements for both tables and the indexes lists and TTL cleanup use."""
        runs, checkpoints = self.runs_table, self.checkpoints_table
        return [
            f"CREATE TABLE IF NOT EXISTS {runs} (run_id TEXT PRIMARY KEY, graph_name TEXT NOT NULL, "
            "status TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, "
            "updated_at DOUBLE PRECISION NOT NULL, "
            "steps INTEGER NOT NULL, error TEXT, serializer TEXT NOT NULL, lease_owner TEXT, "
            "lease_expires_at DOUBLE PRECISION, expires_at DOUBLE PRECISION)",
            f"CREATE TABLE IF NOT EXISTS {checkpoints} (run_id TEXT NOT NULL, seq INTEGER NOT NULL, "
            f"data {self.blob_type} NOT NULL, PRIMARY KEY (run_id, seq)){self.table_suffix}",
            f"CREATE INDEX IF NOT EXISTS {self.table_prefix}runs_created ON {runs} (created_at)",
            f"CREATE INDEX IF NOT EXISTS {self.table_prefix}runs_expires ON {runs} (expires_at)",
        ]

    def _set_clause(self, changes: Mapping[str, Any]) -> tuple[str, list[Any]]:
        check_run_fields(changes)
        ph = self.placeholder
        return ", ".join(f"{name} = {ph}" for name in changes), list(changes.values())

    def create_run(self, info: RunInfo, first_record: bytes) -> bool:
        purge_quietly(self)
        ph = self.placeholder
        columns = ", ".join(RunInfo.FIELDS)
        values = ", ".join(ph for _ in RunInfo.FIELDS)

        def work(cursor: Any, retried: bool) -> bool:
            cursor.execute(
                f"INSERT INTO {self.runs_table} ({columns}) VALUES ({values}) "
                "ON CONFLICT (run_id) DO NOTHING",
                info.as_row(),
            )
            if cursor.rowcount != 1:
                # A retry after a lost connection may find the row the first attempt committed.
                return retried and self._owner_of(cursor, info.run_id) == (info.lease_owner,)
            cursor.execute(
                f"INSERT INTO {self.checkpoints_table} (run_id, seq, data) VALUES ({ph}, 0, {ph})",
                (info.run_id, first_record),
            )
            return True

        return self._run(work)

    def _owner_of(self, cursor: Any, run_id: str, lock: str = "") -> tuple[Any, ...] | None:
        cursor.execute(
            f"SELECT lease_owner FROM {self.runs_table} WHERE run_id = {self.placeholder}{lock}", (run_id,)
        )
        row = cursor.fetchone()
        return None if row is None else tuple(row)

    def get_run(self, run_id: str) -> RunInfo | None:
        def work(cursor: Any, retried: bool) -> RunInfo | None:
            cursor.execute(
                f"SELECT {', '.join(RunInfo.FIELDS)} FROM {self.runs_table} "
                f"WHERE run_id = {self.placeholder}",
                (run_id,),
            )
            row = cursor.fetchone()
            return None if row is None else RunInfo(*row)

        return self._run(work, write=False)

    def update_run(self, run_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        def work(cursor: Any, retried: bool) -> bool:
            if self._update(cursor, run_id, changes, if_owner):
                return True
            if not retried or if_owner is ANY_OWNER:
                return False
            # The first attempt may have committed before the connection died: if the row now
            # holds exactly the change that was asked for, it succeeded.
            owner = self._owner_of(cursor, run_id)
            return owner is not None and "lease_owner" in changes and owner == (changes["lease_owner"],)

        return self._run(work)

    def _update(self, cursor: Any, run_id: str, changes: Mapping[str, Any], if_owner: Any) -> bool:
        ph = self.placeholder
        assignments, values = self._set_clause(changes)
        sql = f"UPDATE {self.runs_table} SET {assignments} WHERE run_id = {ph}"
        values.append(run_id)
        if if_owner is not ANY_OWNER:
            if if_owner is None:
                sql += " AND lease_owner IS NULL"
            else:
                sql += f" AND lease_owner = {ph}"
                values.append(if_owner)
        cursor.execute(sql, values)
        return bool(cursor.rowcount == 1)

    def append(
        self,
        run_id: str,
        seq: int,
        record: bytes,
        *,
        owner: str | None = None,
        changes: Mapping[str, Any] | None = None,
        prune_below: int | None = None,
    ) -> None:
        ph = self.placeholder
        # One statement inserts the record only while the run row exists (and is owned by
        # `owner`); the row lock makes a concurrent delete_run wait for this transaction.
        condition = f"run_id = {ph}" + ("" if owner is None else f" AND lease_owner = {ph}")
        sql = (
            f"INSERT INTO {self.checkpoints_table} (run_id, seq, data) SELECT {ph}, {ph}, {ph} "
            f"FROM {self.runs_table} WHERE {condition}{self.row_lock}"
        )
        params = (run_id, seq, record, run_id) if owner is None else (run_id, seq, record, run_id, owner)

        attempts: list[bool] = []

        def work(cursor: Any, retried: bool) -> None:
            attempts.append(retried)
            cursor.execute(sql, params)
            if cursor.rowcount != 1:
                if self._owner_of(cursor, run_id) is None:
                    raise deleted_run_error(run_id)
                raise lost_lease_error(run_id, seq)
            if changes:
                self._update(cursor, run_id, changes, ANY_OWNER)
            if prune_below is not None:
                cursor.execute(
                    f"DELETE FROM {self.checkpoints_table} WHERE run_id = {ph} AND seq < {ph}",
                    (run_id, prune_below),
                )

        try:
            # The common step writes one record and nothing else: one statement is enough.
            self._run(work, single=not changes and prune_below is None)
        except Exception as exc:
            if not self._is_duplicate(exc):
                raise
            if attempts[-1] and self._stored_record(run_id, seq) == bytes(record):
                return  # the first attempt committed it before the connection died
            raise stale_writer_error(run_id, seq) from exc

    def _stored_record(self, run_id: str, seq: int) -> bytes | None:
        """Record ``seq`` of ``run_id`` as stored (read in its own transaction)."""

        def work(cursor: Any, retried: bool) -> bytes | None:
            ph = self.placeholder
            cursor.execute(
                f"SELECT data FROM {self.checkpoints_table} WHERE run_id = {ph} AND seq = {ph}", (run_id, seq)
            )
            row = cursor.fetchone()
            return None if row is None else bytes(row[0])

        return self._run(work, write=False)

    def load(self, run_id: str) -> list[tuple[int, bytes]]:
        def work(cursor: Any, retried: bool) -> list[tuple[int, bytes]]:
            cursor.execute(
                f"SELECT seq, data FROM {self.checkpoints_table} "
                f"WHERE run_id = {self.placeholder} ORDER BY seq",
                (run_id,),
            )
            return [(seq, bytes(data)) for seq, data in cursor.fetchall()]

        return self._run(work, write=False)

    def list_runs(
        self,
        *,
        graph_name: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        ph = self.placeholder
        conditions, values = [], []
        for condition, value in (
            (f"graph_name = {ph}", graph_name),
            (f"status = {ph}", status),
            (f"created_at >= {ph}", since),
            (f"created_at < {ph}", until),
        ):
            if value is not None:
                conditions.append(condition)
                values.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT {', '.join(RunInfo.FIELDS)} FROM {self.runs_table}{where} ORDER BY created_at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def work(cursor: Any, retried: bool) -> list[RunInfo]:
            cursor.execute(sql, values)
            return [RunInfo(*row) for row in cursor.fetchall()]

        return self._run(work, write=False)

    def delete_run(self, run_id: str) -> bool:
        ph = self.placeholder

        def work(cursor: Any, retried: bool) -> bool:
            # The run row first: its row lock makes a writer's append in flight finish (or fail)
            # before the records are deleted, so none is left behind.
            cursor.execute(f"DELETE FROM {self.runs_table} WHERE run_id = {ph}", (run_id,))
            had_run = cursor.rowcount > 0
            cursor.execute(f"DELETE FROM {self.checkpoints_table} WHERE run_id = {ph}", (run_id,))
            # On a retry after a lost connection the first attempt may have committed already.
            return bool(had_run or cursor.rowcount > 0 or retried)

        return self._run(work)

    def purge_expired(self, now: float | None = None) -> int:
        moment = time.time() if now is None else now
        return self._run(lambda cursor, retried: self._purge(cursor, moment))

    def _purge(self, cursor: Any, now: float) -> int:
        """Delete the expired runs set-based (never one parameter per run: drivers limit those)."""
        ph = self.placeholder
        expired = f"expires_at IS NOT NULL AND expires_at <= {ph}"
        cursor.execute(
            f"DELETE FROM {self.checkpoints_table} WHERE run_id IN "
            f"(SELECT run_id FROM {self.runs_table} WHERE {expired})",
            (now,),
        )
        cursor.execute(f"DELETE FROM {self.runs_table} WHERE {expired}", (now,))
        return int(cursor.rowcount)


__all__ = [
    "SCHEMA_VERSION",
    "RunState",
    "SQLStore",
    "StateTracker",
    "apply_record",
    "check_run_fields",
    "claim",
    "deleted_run_error",
    "fold",
    "frame",
    "latest_state",
    "lease_is_live",
    "lost_lease_error",
    "missing_extra",
    "new_owner",
    "purge_quietly",
    "release",
    "select_runs",
    "unframe",
]
