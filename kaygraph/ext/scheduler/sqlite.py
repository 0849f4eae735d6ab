"""SQLiteScheduleStore: schedules in one SQLite file (the default), shared by many processes."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
            self._connection = sqlite3.connect(
                str(path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if str(path) != ":memory:":
                self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise ScheduleStoreError(f"cannot open the SQLite schedule store {str(path)!r}: {exc}") from exc
        self._lock = threading.Lock()
        with self._transaction() as cursor:
            for statement in self.schema_statements():
                cursor.execute(statement)

    @contextlib.contextmanager
    def _transaction(self, write: bool = True, *, single: bool = False) -> Iterator[Any]:
        with self._lock:
            cursor = self._connection.cursor()
            if not write or single:  # autocommit: a lone write statement takes the lock itself
                yield cursor
                return
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def describe(self) -> str:
        return f"sqlite:///{self.path}"


__all__ = ["SQLiteScheduleStore"]
