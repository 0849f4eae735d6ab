"""PostgresStore: runs in PostgreSQL (psycopg 3), safe for many writer processes."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any

from kaygraph.core.exceptions import PersistenceError

from .base import missing_extra, redact_url
from .sql import SQLStore

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("PostgresStore", "psycopg") from exc

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")


class PostgresStore(SQLStore):
    """Two tables (``kaygraph_runs``, ``kaygraph_checkpoints``) in ``schema`` (default: the search path).

    Every checkpoint is one short transaction; a primary key on ``(run_id, seq)`` fences writers.
    """

    backend = "postgres"
    placeholder = "%s"
    blob_type = "BYTEA"
    # The lock an UPDATE of the row takes anyway, so the append's own row update never has to upgrade it.
    row_lock = " FOR NO KEY UPDATE"

    def __init__(self, url: str, *, schema: str | None = None, table_prefix: str = "kaygraph_") -> None:
        for name, value in (("schema", schema), ("table_prefix", table_prefix)):
            if value is not None and not _IDENTIFIER.match(value):
                raise PersistenceError(f"PostgresStore {name} must be a plain SQL identifier, got {value!r}")
        self.url = url
        self.schema = schema
        self.set_tables(table_prefix, f"{schema}." if schema else "")
        self._connection = self._connect()
        self._listener: Any = None
        self._lock = threading.Lock()
        with self._transaction() as cursor:
            # Concurrent first connections would race on CREATE TABLE IF NOT EXISTS: serialize them.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"kaygraph:{self.runs_table}",))
            if schema:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self.create_schema(cursor)

    @contextlib.contextmanager
    def _transaction(self, write: bool = True, *, single: bool = False) -> Iterator[Any]:
        with self._lock, self._connection.transaction(), self._connection.cursor() as cursor:
            yield cursor

    def _connect(self) -> Any:
        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise PersistenceError(
                f"cannot connect to the PostgreSQL store {self.describe()}: {str(exc).strip()}"
            ) from exc

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel writers announce run changes on (one per table)."""
        return f"kaygraph_changes:{self.runs_table}"[:63]

    def _notify(self, cursor: Any, run_id: str) -> None:
        cursor.execute("SELECT pg_notify(%s, %s)", (self.channel, run_id))

    def wait_for_change(self, timeout: float) -> bool:
        """Wait for a writer's NOTIFY on :attr:`channel` (a second connection, made on first use)."""
        try:
            if self._listener is None:
                self._listener = psycopg.connect(self.url, autocommit=True)
                self._listener.execute(f'LISTEN "{self.channel}"')
            got = False
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                got = True
            return got
        except psycopg.Error as exc:
            raise PersistenceError(f"the PostgreSQL store {self.describe()} failed: {exc}") from exc

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation)

    def _driver_error(self, exc: BaseException) -> PersistenceError | None:
        if not isinstance(exc, psycopg.Error):
            return None
        return PersistenceError(f"the PostgreSQL store {self.describe()} failed: {type(exc).__name__}: {exc}")

    def columns(self, cursor: Any) -> set[str]:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = COALESCE(%s, current_schema())",
            (f"{self.table_prefix}runs", self.schema),
        )
        return {str(row[0]) for row in cursor.fetchall()}

    def _reconnect_after(self, exc: BaseException) -> bool:
        """The server closed the connection (restart, failover, idle timeout, terminated backend):
        open a new one, so the operation is retried once instead of every later call failing."""
        if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return False
        with self._lock:
            connection = self._connection
            if not (connection.closed or connection.broken):
                return False
            with contextlib.suppress(Exception):
                connection.close()
            self._connection = self._connect()
        return True

    def _purge(self, cursor: Any, now: float) -> int:
        # Lock the expired rows first, so no append or claim slips in between the two deletes.
        cursor.execute(
            f"SELECT count(*) FROM (SELECT run_id FROM {self.runs_table} WHERE expires_at IS NOT NULL "
            "AND expires_at <= %s FOR UPDATE) AS expired",
            (now,),
        )
        return super()._purge(cursor, now)

    def close(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
            self._connection.close()

    def describe(self) -> str:
        return redact_url(self.url) + (f" (schema {self.schema})" if self.schema else "")


__all__ = ["PostgresStore"]
