"""PostgresScheduleStore: schedules in PostgreSQL (psycopg 3), shared by many scheduler processes."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .base import SQLScheduleStore, missing_extra, redact_url, unreachable
from .errors import ScheduleStoreError

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("PostgresScheduleStore", "psycopg") from exc

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")
_T = TypeVar("_T")


class PostgresScheduleStore(SQLScheduleStore):
    """Tables ``kaygraph_schedules`` and ``kaygraph_fires`` in ``schema`` (default: the search path).

    Schedulers lock due schedules with ``FOR UPDATE SKIP LOCKED``, so replicas split the work
    without waiting on each other; a lost connection is reopened and the operation retried once.
    """

    backend = "postgres"
    placeholder = "%s"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    null_safe_equal = "IS NOT DISTINCT FROM"
    lock_due_single = True

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 10.0) -> None:
        if schema is not None and not _IDENTIFIER.match(schema):
            raise ScheduleStoreError(
                f"PostgresScheduleStore schema must be a plain SQL identifier, got {schema!r}"
            )
        self.url = url
        self.schema = schema
        self.connect_timeout = connect_timeout
        self.set_tables("kaygraph_", f"{schema}." if schema else "")
        self._lock = threading.Lock()
        self._connection = self._connect()
        with self._transaction() as cursor:
            # Concurrent first connections would race on CREATE TABLE IF NOT EXISTS: serialize them.
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"kaygraph:{self.schedules_table}",)
            )
            if schema:
                cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for statement in self.schema_statements():
                cursor.execute(statement)

    def _connect(self) -> Any:
        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as exc:
            raise unreachable("PostgreSQL", self.url, exc) from exc

    @contextlib.contextmanager
    def _transaction(self, write: bool = True, *, single: bool = False) -> Iterator[Any]:
        with self._lock:
            if not write or single:  # the connection is in autocommit mode: one round trip
                with self._connection.cursor() as cursor:
                    yield cursor
                return
            with self._connection.transaction(), self._connection.cursor() as cursor:
                yield cursor

    def _run(self, work: Callable[[Any], _T], *, write: bool = True, single: bool = False) -> _T:
        try:
            return super()._run(work, write=write, single=single)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            with self._lock:
                connection = self._connection
                if not (connection.closed or connection.broken):
                    raise
                with contextlib.suppress(Exception):
                    connection.close()
                try:
                    self._connection = self._connect()
                except ScheduleStoreError:
                    raise unreachable("PostgreSQL", self.url, exc) from exc
        return super()._run(work, write=write, single=single)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def describe(self) -> str:
        return redact_url(self.url) + (f" (schema {self.schema})" if self.schema else "")


__all__ = ["PostgresScheduleStore"]
