"""SQLiteScheduleStore: schedules in one SQLite file (the default), shared by many processes."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from kaygraph.utils.sqlite import connect as sqlite_connect
from kaygraph.utils.sqlite import transaction as sqlite_transaction

from .base import SQLScheduleStore
from .errors import ScheduleStoreError


class SQLiteScheduleStore(SQLScheduleStore):
    """A SQLite file in WAL mode. Every write takes the database lock up front (``BEGIN
    IMMEDIATE``), so a lock or a claim is one serialized transaction across processes; waiting
    writers queue for up to ``timeout`` seconds instead of failing with "database is locked"."""

    backend = "sqlite"

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite_connect(path, timeout=timeout)
        except (sqlite3.Error, OSError) as exc:
            raise ScheduleStoreError(f"cannot open the SQLite schedule store {str(path)!r}: {exc}") from exc
        self._lock = threading.Lock()
        with self._transaction() as cursor:
            for statement in self.schema_statements():
                cursor.execute(statement)

    def _transaction(self, write: bool = True, *, single: bool = False) -> AbstractContextManager[Any]:
        return sqlite_transaction(self._lock, self._connection, write, single=single)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def describe(self) -> str:
        return f"sqlite:///{self.path}"


__all__ = ["SQLiteScheduleStore"]
