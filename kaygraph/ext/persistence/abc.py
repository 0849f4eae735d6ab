"""The two interfaces of the persistence extension: :class:`CheckpointStore` and :class:`Serializer`.

A store is deliberately small: it keeps one row of metadata per run (:class:`RunInfo`) and an
append-only list of opaque checkpoint records per run, numbered ``seq = 0, 1, 2, ...``. Everything
else (the record format, deltas, compression, leases, resume positions, history) is written once
in the package's other modules (``records``, ``tracking``, ``leases``, ``checkpointer``,
``history``) on top of these primitives, so a new backend is a few
dozen lines and behaves exactly like the others.

Two guarantees every store must give, because leases and crash safety rest on them:

* :meth:`CheckpointStore.append` is atomic and refuses a ``seq`` that already exists for the run
  (it raises :class:`~kaygraph.core.exceptions.RunLockedError`), a run that no longer exists and
  a writer that no longer holds the lease. The record number is the fencing
  token: two writers that both think they own a run collide on their next record, and the loser
  stops, so a run's history is never interleaved.
* :meth:`CheckpointStore.update_run` with ``if_owner`` is a compare-and-set on the lease owner.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

#: Status of a run: ``running`` (also after its process was killed: see ``lease_owner``),
#: ``succeeded``, ``failed``, ``cancelled`` (stopped by a ``CancelToken``; resumable) or ``pending``
#: (a fork that was created but not started yet; resume it to run it).
RUN_STATUSES = ("running", "succeeded", "failed", "cancelled", "pending")

#: Sentinel for :meth:`CheckpointStore.update_run`: apply the change whoever holds the lease.
ANY_OWNER: Any = object()


@dataclasses.dataclass
class RunInfo:
    """The metadata row of one run: what lists and dashboards show without reading checkpoints."""

    run_id: str
    graph_name: str
    status: str = "running"
    created_at: float = 0.0
    updated_at: float = 0.0
    #: Completed nodes so far (nested graphs count as nodes too); updated at least once a second.
    steps: int = 0
    #: ``repr`` of the error that ended a failed run.
    error: str | None = None
    #: Name of the serializer that wrote the state (``json`` or ``pickle``).
    serializer: str = "json"
    #: ``host:pid:process-start:token`` of the process writing the run; None when nobody holds it.
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    #: When a finished run is erased (``persistence.ttl`` after it ended); None: never.
    expires_at: float | None = None
    #: ``package.module:attr`` the graph was loaded from (``kaygraph.load_graph``), so the run can
    #: be resumed by reference (``kaygraph runs resume``); None for graphs built in code.
    graph_ref: str | None = None
    #: For a fork (:func:`~kaygraph.ext.persistence.fork_run`): the run and record it started from.
    parent_run_id: str | None = None
    parent_seq: int | None = None
    #: The formatted traceback of the error that ended a failed run (bounded), for dashboards.
    traceback: str | None = None
    #: Why another process asked this run to stop (:func:`~kaygraph.ext.persistence.request_cancel`);
    #: its writer cancels it within about a second.
    cancel_requested: str | None = None

    #: Columns a store keeps, in this order (SQL stores use them as column names).
    FIELDS: ClassVar[tuple[str, ...]] = (
        "run_id",
        "graph_name",
        "status",
        "created_at",
        "updated_at",
        "steps",
        "error",
        "serializer",
        "lease_owner",
        "lease_expires_at",
        "expires_at",
        "graph_ref",
        "parent_run_id",
        "parent_seq",
        "traceback",
        "cancel_requested",
    )

    #: Fields whose value must be an int (or None where the default is None).
    INT_FIELDS: ClassVar[tuple[str, ...]] = ("steps", "parent_seq")
    #: Fields whose value must be a float (or None where the default is None).
    FLOAT_FIELDS: ClassVar[tuple[str, ...]] = ("created_at", "updated_at", "lease_expires_at", "expires_at")

    def as_row(self) -> tuple[Any, ...]:
        """The values of :attr:`FIELDS`, in order."""
        return tuple(getattr(self, name) for name in self.FIELDS)


class CheckpointStore(abc.ABC):
    """Where durable runs live: run metadata plus numbered, opaque checkpoint records per run.

    Implementations: ``MemoryStore``, ``SQLiteStore``, ``RedisStore``, ``PostgresStore``. They are
    thread-safe (a ``ParallelBatchNode`` checkpoints items from worker threads) and may be used by
    many processes at once (SQLite file, Redis, PostgreSQL).
    """

    #: Short name used in URLs and ``kaygraph info`` (``sqlite``, ``redis``, ...).
    backend: ClassVar[str] = ""
    #: When (``time.time()``) creating a run next purges expired runs; see ``purge_quietly``.
    next_purge_at: float = 0.0

    @abc.abstractmethod
    def create_run(self, info: RunInfo, first_record: bytes) -> bool:
        """Insert ``info`` and its record 0 unless the run id exists; True if inserted.

        Atomic, so a run never exists without the snapshot it would be resumed from. Stores
        that clean up by SQL also delete expired runs here (cleanup on write).
        """

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunInfo | None:
        """The metadata of ``run_id``, or None when no such run is stored."""

    @abc.abstractmethod
    def update_run(self, run_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        """Set the :class:`RunInfo` fields in ``changes``; True if the run exists and was changed.

        With ``if_owner`` (a lease owner string or None), change the row only while its
        ``lease_owner`` still equals that value: the compare-and-set that claims a lease.
        Setting ``expires_at`` makes a store with native expiry (Redis) expire the run then.
        """

    @abc.abstractmethod
    def append(
        self,
        run_id: str,
        seq: int,
        record: bytes,
        *,
        owner: str | None = None,
        changes: Mapping[str, Any] | None = None,
        prune: Sequence[tuple[int, int]] = (),
    ) -> None:
        """Store checkpoint record ``seq`` of ``run_id`` in one atomic write.

        In the same transaction: apply ``changes`` to the run's metadata (as :meth:`update_run`
        without an owner check) and delete the run's records in each half-open range
        ``(low, high)`` of ``prune``.
        The record is written only while the run's row exists (``RunNotFoundError`` once it was
        deleted, so a deleted run never gets records back) and, with ``owner``, only while that
        writer holds the run's lease (``RunLockedError`` otherwise). Raises ``RunLockedError`` if
        record ``seq`` already exists (another writer got there).
        """

    @abc.abstractmethod
    def read(
        self,
        run_id: str,
        *,
        start: int = 0,
        stop: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[tuple[int, bytes]]:
        """The stored records of ``run_id`` with ``start <= seq < stop`` as ``(seq, record)``,
        by increasing ``seq`` (decreasing with ``descending``), at most ``limit`` of them.

        Readers page through long histories with it, so memory stays bounded.
        """

    def load(self, run_id: str) -> list[tuple[int, bytes]]:
        """Every stored record of ``run_id`` as ``(seq, record)``, by increasing ``seq``."""
        return self.read(run_id)

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        graph_name: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        before: tuple[float, str] | None = None,
    ) -> list[RunInfo]:
        """Runs matching every filter given, newest first (by ``created_at``, then ``run_id``;
        ``since`` inclusive, ``until`` exclusive), at most ``limit`` of them.

        ``before=(created_at, run_id)`` is a keyset cursor: only runs that sort after that one
        (older, or as old with a smaller id) are returned, so pages never skip nor repeat a run.
        Rows that cannot be read are skipped with a warning naming them, never hiding the others.
        """

    def count_runs(
        self, *, graph_name: str | None = None, since: float | None = None, until: float | None = None
    ) -> dict[str, int]:
        """How many runs have each status (every status in :data:`RUN_STATUSES` is a key)."""
        counts = dict.fromkeys(RUN_STATUSES, 0)
        for info in self.list_runs(graph_name=graph_name, since=since, until=until):
            counts[info.status] = counts.get(info.status, 0) + 1
        return counts

    @abc.abstractmethod
    def changed_since(self, since: float, *, limit: int | None = None) -> list[RunInfo]:
        """Runs whose ``updated_at`` is later than ``since``, oldest change first: one cheap
        query a dashboard polls for all its clients (``updated_at`` is indexed)."""

    def wait_for_change(self, timeout: float) -> bool:
        """Block until a run row of this store may have changed, or ``timeout`` seconds passed;
        True if a change was signalled. Stores with push (Redis pub/sub, PostgreSQL
        LISTEN/NOTIFY) return as soon as a writer announces a change; the others just wait, so
        callers poll :meth:`changed_since` after it either way."""
        import time

        time.sleep(timeout)
        return True

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> bool:
        """Erase every trace of ``run_id`` (metadata, records, index entries, also records left
        without a metadata row); True if anything was erased."""

    @abc.abstractmethod
    def purge_expired(self, now: float | None = None) -> int:
        """Delete the runs whose ``expires_at`` has passed; returns how many were deleted."""

    def close(self) -> None:  # noqa: B027 - optional: stores without connections have nothing to do
        """Release connections; the store is unusable afterwards."""

    def describe(self) -> str:
        """Where the data lives, for messages and ``kaygraph info`` (no passwords)."""
        return self.backend

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Serializer(abc.ABC):
    """Turns values of the shared store into JSON text and back; one value (top-level key) at a time."""

    #: Stored with each run, so a run is never resumed with a serializer that cannot read it.
    name: ClassVar[str] = ""
    #: Whether a list encodes as the JSON list of its items' encodings (``encode([a, b])`` is
    #: ``"[" + encode(a) + "," + encode(b) + "]"``): then appends to a list are stored item by item.
    itemwise: ClassVar[bool] = False

    @abc.abstractmethod
    def encode(self, value: Any, key_path: str) -> str:
        """``value`` as JSON text. ``key_path`` (``shared['docs']``) names the value in errors.

        Raises ``SerializationError`` (with ``key_path`` of the innermost bad value) when the value
        cannot be encoded.
        """

    @abc.abstractmethod
    def decode(self, data: Any) -> Any:
        """The original value, from the parsed JSON (``json.loads``) of :meth:`encode`'s text."""


__all__ = ["ANY_OWNER", "RUN_STATUSES", "CheckpointStore", "RunInfo", "Serializer"]
