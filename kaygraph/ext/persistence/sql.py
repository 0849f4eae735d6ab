"""SQLStore: the SQL shared by ``SQLiteStore`` and ``PostgresStore`` (two tables, every statement once)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from kaygraph.core.exceptions import PersistenceError

from .abc import ANY_OWNER, RUN_STATUSES, CheckpointStore, RunInfo
from .base import check_run_fields, purge_quietly, readable_runs, run_from_row
from .leases import deleted_run_error, lost_lease_error, stale_writer_error

_T = TypeVar("_T")

#: Columns added after the first release, with their SQL type: added to older tables on open.
_ADDED_COLUMNS = {
    "graph_ref": "TEXT",
    "parent_run_id": "TEXT",
    "parent_seq": "INTEGER",
    "traceback": "TEXT",
    "cancel_requested": "TEXT",
}


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

    def _driver_error(self, exc: BaseException) -> PersistenceError | None:
        """``exc`` (a driver error) as the ``PersistenceError`` a user sees, naming the store;
        None for errors that are not the driver's (they propagate unchanged)."""
        return None

    def _run(self, work: Callable[[Any, bool], _T], *, write: bool = True, single: bool = False) -> _T:
        """``work(cursor, retried)`` in one transaction; once more on a new connection if the
        connection died. Every operation is written so that running it again is safe. Driver
        errors reach the caller as ``PersistenceError`` naming the store (never raw)."""
        try:
            try:
                with self._transaction(write, single=single) as cursor:
                    return work(cursor, False)
            except Exception as exc:
                if not self._reconnect_after(exc):
                    raise
            with self._transaction(write, single=single) as cursor:
                return work(cursor, True)
        except PersistenceError:
            raise
        except Exception as exc:
            if self._is_duplicate(exc):
                raise
            error = self._driver_error(exc)
            if error is None:
                raise
            raise error from exc

    def columns(self, cursor: Any) -> set[str]:
        """The column names of the runs table as it exists (to add columns of newer versions)."""
        raise NotImplementedError

    def create_schema(self, cursor: Any) -> None:
        """Create both tables and their indexes, and add the columns newer versions need."""
        for statement in self.schema_statements():
            cursor.execute(statement)
        present = self.columns(cursor)
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                cursor.execute(f"ALTER TABLE {self.runs_table} ADD COLUMN {name} {kind}")
        runs, prefix = self.runs_table, self.table_prefix
        # changes() polls by updated_at; listings filter by graph and/or status, newest first.
        for name, columns in (
            ("updated", "updated_at"),
            ("graph_status", "graph_name, status, created_at, run_id"),
            ("graph", "graph_name, created_at, run_id"),
            ("status", "status, created_at, run_id"),
        ):
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {prefix}runs_{name} ON {runs} ({columns})")

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
            f"CREATE INDEX IF NOT EXISTS {self.table_prefix}runs_created ON {runs} (created_at, run_id)",
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
            self._notify(cursor, info.run_id)
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
            return None if row is None else self._info(run_id, row)

        return self._run(work, write=False)

    def _info(self, run_id: str, row: Sequence[Any]) -> RunInfo:
        return run_from_row(dict(zip(RunInfo.FIELDS, row, strict=True)), run_id, self.describe())

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

    def _notify(self, cursor: Any, run_id: str) -> None:
        """Announce that ``run_id``'s row changed (PostgreSQL: NOTIFY), in the same transaction."""

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
        changed = bool(cursor.rowcount == 1)
        if changed and "updated_at" in changes:
            self._notify(cursor, run_id)
        return changed

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
        ph = self.placeholder
        sql = self._append_sql(owner is None)
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
            for low, high in prune:
                cursor.execute(
                    f"DELETE FROM {self.checkpoints_table} "
                    f"WHERE run_id = {ph} AND seq >= {ph} AND seq < {ph}",
                    (run_id, low, high),
                )

        try:
            # The common step writes one record and nothing else: one statement is enough.
            self._run(work, single=not changes and not prune)
        except Exception as exc:
            if not self._is_duplicate(exc):
                raise
            if attempts[-1] and self._stored_record(run_id, seq) == bytes(record):
                return  # the first attempt committed it before the connection died
            raise stale_writer_error(run_id, seq) from exc

    def _append_sql(self, anyone: bool) -> str:
        """The INSERT of :meth:`append` (built once per store): one statement inserts the record
        only while the run row exists (and, unless ``anyone``, is owned by the writer); the row
        lock makes a concurrent delete_run wait for this transaction."""
        texts: dict[bool, str] | None = self.__dict__.get("_append_texts")
        if texts is None:
            ph = self.placeholder
            insert = f"INSERT INTO {self.checkpoints_table} (run_id, seq, data) SELECT {ph}, {ph}, {ph} "
            texts = self.__dict__["_append_texts"] = {
                anyone: f"{insert}FROM {self.runs_table} WHERE run_id = {ph}"
                + ("" if anyone else f" AND lease_owner = {ph}")
                + self.row_lock
                for anyone in (True, False)
            }
        return texts[anyone]

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

    def read(
        self,
        run_id: str,
        *,
        start: int = 0,
        stop: int | None = None,
        limit: int | None = None,
        descending: bool = False,
    ) -> list[tuple[int, bytes]]:
        ph = self.placeholder
        sql = f"SELECT seq, data FROM {self.checkpoints_table} WHERE run_id = {ph} AND seq >= {ph}"
        values: list[Any] = [run_id, start]
        if stop is not None:
            sql += f" AND seq < {ph}"
            values.append(stop)
        sql += " ORDER BY seq DESC" if descending else " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"

        def work(cursor: Any, retried: bool) -> list[tuple[int, bytes]]:
            cursor.execute(sql, values)
            return [(seq, bytes(data)) for seq, data in cursor.fetchall()]

        return self._run(work, write=False)

    def _where(
        self,
        *,
        graph_name: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        before: tuple[float, str] | None = None,
    ) -> tuple[str, list[Any]]:
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
        if before is not None:
            # The plain bound first: SQLite then searches the index instead of scanning every run.
            conditions.append(
                f"created_at <= {ph} AND (created_at < {ph} OR (created_at = {ph} AND run_id < {ph}))"
            )
            values += [before[0], before[0], before[0], before[1]]
        return (f" WHERE {' AND '.join(conditions)}" if conditions else ""), values

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
        where, values = self._where(
            graph_name=graph_name, status=status, since=since, until=until, before=before
        )
        sql = (
            f"SELECT {', '.join(RunInfo.FIELDS)} FROM {self.runs_table}{where} "
            "ORDER BY created_at DESC, run_id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._select_runs(sql, values)

    def _select_runs(self, sql: str, values: list[Any]) -> list[RunInfo]:
        def work(cursor: Any, retried: bool) -> list[RunInfo]:
            cursor.execute(sql, values)
            return readable_runs(((str(row[0]), row) for row in cursor.fetchall()), self._info)

        return self._run(work, write=False)

    def count_runs(
        self, *, graph_name: str | None = None, since: float | None = None, until: float | None = None
    ) -> dict[str, int]:
        where, values = self._where(graph_name=graph_name, since=since, until=until)
        sql = f"SELECT status, count(*) FROM {self.runs_table}{where} GROUP BY status"

        def work(cursor: Any, retried: bool) -> dict[str, int]:
            cursor.execute(sql, values)
            counts = dict.fromkeys(RUN_STATUSES, 0)
            for status, count in cursor.fetchall():
                counts[str(status)] = int(count)
            return counts

        return self._run(work, write=False)

    def changed_since(self, since: float, *, limit: int | None = None) -> list[RunInfo]:
        sql = (
            f"SELECT {', '.join(RunInfo.FIELDS)} FROM {self.runs_table} "
            f"WHERE updated_at > {self.placeholder} ORDER BY updated_at"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._select_runs(sql, [since])

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


__all__ = ["SQLStore"]
