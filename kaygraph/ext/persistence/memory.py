"""MemoryStore: runs kept in this process's memory, for tests and throwaway runs."""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .abc import ANY_OWNER, CheckpointStore, RunInfo
from .base import check_run_fields, in_ranges, purge_quietly, readable_runs, run_from_row, select_runs
from .leases import deleted_run_error, lost_lease_error, stale_writer_error

_named_stores: dict[str, MemoryStore] = {}
_named_lock = threading.Lock()


class MemoryStore(CheckpointStore):
    """Keeps runs in dicts: fast and dependency-free, gone when the process exits.

    ``memory://name`` URLs return one shared instance per name, so ``resume`` in the same process
    finds runs written by another ``durable(...)`` object.
    """

    backend = "memory"

    def __init__(self) -> None:
        self._runs: dict[str, RunInfo] = {}
        self._records: dict[str, dict[int, bytes]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # (expires_at, run_id) for every expiry ever set, soonest first: a purge pops what has
        # passed instead of scanning every run (it runs before each new run is stored).
        self._expiries: list[tuple[float, str]] = []

    @classmethod
    def named(cls, name: str) -> MemoryStore:
        """The process-wide store called ``name`` (created on first use)."""
        with _named_lock:
            store = _named_stores.get(name)
            if store is None:
                store = _named_stores[name] = cls()
            return store

    def create_run(self, info: RunInfo, first_record: bytes) -> bool:
        purge_quietly(self)
        with self._lock:
            if info.run_id in self._runs:
                return False
            self._runs[info.run_id] = RunInfo(*info.as_row())
            self._records[info.run_id] = {0: bytes(first_record)}
            self._note_expiry(info.run_id, info.expires_at)
            self._changed.notify_all()
            return True

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._lock:
            info = self._runs.get(run_id)
            return None if info is None else self._copy(run_id, info)

    def _copy(self, run_id: str, info: RunInfo) -> RunInfo:
        """A validated copy (rows are checked the same way on every store)."""
        return run_from_row(info.__dict__, run_id, self.describe())

    def update_run(self, run_id: str, changes: Mapping[str, Any], *, if_owner: Any = ANY_OWNER) -> bool:
        with self._lock:
            return self._update(run_id, changes, if_owner)

    def _update(self, run_id: str, changes: Mapping[str, Any], if_owner: Any) -> bool:
        info = self._runs.get(run_id)
        if info is None or (if_owner is not ANY_OWNER and info.lease_owner != if_owner):
            return False
        check_run_fields(changes)
        for name, value in changes.items():
            setattr(info, name, value)
        if "expires_at" in changes:
            self._note_expiry(run_id, info.expires_at)
        if "updated_at" in changes:
            self._changed.notify_all()
        return True

    def wait_for_change(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait(timeout)

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
        with self._lock:
            info = self._runs.get(run_id)
            if info is None:
                raise deleted_run_error(run_id)
            if owner is not None and info.lease_owner != owner:
                raise lost_lease_error(run_id, seq)
            records = self._records.setdefault(run_id, {})
            if seq in records:
                raise stale_writer_error(run_id, seq)
            records[seq] = bytes(record)
            if changes:
                self._update(run_id, changes, ANY_OWNER)
            if prune:
                for old in [old for old in records if in_ranges(old, prune)]:
                    del records[old]

    def read(
        self,
        run_id: str,
        *,
        start: int = 0,
        stop: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[tuple[int, bytes]]:
        with self._lock:
            records = self._records.get(run_id, {})
            seqs = sorted(
                (seq for seq in records if seq >= start and (stop is None or seq < stop)), reverse=descending
            )
            return [(seq, records[seq]) for seq in seqs[:limit]]

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
        with self._lock:
            runs = readable_runs(list(self._runs.items()), self._copy)
        return select_runs(
            runs, graph_name=graph_name, status=status, since=since, until=until, limit=limit, before=before
        )

    def changed_since(self, since: float, *, limit: int | None = None) -> list[RunInfo]:
        with self._lock:
            runs = readable_runs(
                [(run_id, info) for run_id, info in self._runs.items() if info.updated_at > since], self._copy
            )
        runs.sort(key=lambda info: info.updated_at)
        return runs[:limit]

    def delete_run(self, run_id: str) -> bool:
        with self._lock:
            had_records = self._records.pop(run_id, None) is not None
            return self._runs.pop(run_id, None) is not None or had_records

    def purge_expired(self, now: float | None = None) -> int:
        with self._lock:
            return self._purge(time.time() if now is None else now)

    def _note_expiry(self, run_id: str, expires_at: float | None) -> None:
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, run_id))

    def _purge(self, now: float) -> int:
        purged = 0
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, run_id = heapq.heappop(expiries)
            info = self._runs.get(run_id)
            # An entry is stale if the run is gone or its expiry moved (the new one has its own).
            if info is not None and info.expires_at is not None and info.expires_at <= now:
                del self._runs[run_id]
                self._records.pop(run_id, None)
                purged += 1
        return purged


__all__ = ["MemoryStore"]
