"""SQLiteStore: runs in one SQLite file (the default store), safe for many processes at once."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaygraph.core.exceptions import PersistenceError

from .base import SQLStore

DURABILITIES = {"normal": "NORMAL", "full": "FULL"}


class SQLiteStore(SQLStore):
    """A SQLite file in WAL mode; one transaction per checkpoint.

    ``durability="normal"`` (default, ``synchronous=NORMAL``) survives a killed process;
    ``"full"`` (``synchronous=FULL``) also survives power loss, at one fsync per checkpoint.
    Writers take the lock with ``BEGIN IMMEDIATE`` and wait up to ``timeout`` seconds for it, so
    concurrent processes queue instead of failing with "database is locked".
    """

    backend = "sqlite"
    table_suffix = " WITHOUT ROWID"

    def __init__(self, path: str | Path, *, durability: str = "normal", timeout: float = 30.0) -> None:
        if durability not in DURABILITIES:
            raise PersistenceError(
                f"SQLiteStore durability must be one of {sorted(DURABILITIES)}, got {durability!r}"
            )
        self.path = Path(path)
        self.durability = durability
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._connection = sqlite3.connect(
                str(path), timeout=timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise PersistenceError(f"cannot open the SQLite store {str(path)!r}: {exc}") from exc
        self._lock = threading.Lock()
        connection = self._connection
        connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if str(path) != ":memory:":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {DURABILITIES[durability]}")
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

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def describe(self) -> str:
        return f"sqlite:///{self.path} (WAL, durability={self.durability})"


__all__ = ["SQLiteStore"]
