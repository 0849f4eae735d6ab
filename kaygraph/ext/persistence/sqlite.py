"""SQLiteStore: runs in one SQLite file (the default store), safe for many processes at once."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from kaygraph.core.exceptions import PersistenceError
from kaygraph.utils.sqlite import connect as sqlite_connect
from kaygraph.utils.sqlite import transaction as sqlite_transaction

from .errors import StoreNotFoundError
from .sql import SQLStore

DURABILITIES = {"normal": "NORMAL", "full": "FULL"}


class SQLiteStore(SQLStore):
    """A SQLite file in WAL mode; one transaction per checkpoint.

    ``durability="normal"`` (default, ``synchronous=NORMAL``) survives a killed process;
    ``"full"`` (``synchronous=FULL``) also survives power loss, at one fsync per checkpoint.
    Writers take the lock with ``BEGIN IMMEDIATE`` and wait up to ``timeout`` seconds for it, so
    concurrent processes queue instead of failing with "database is locked".

    The file's directory must exist (``create_dirs=True`` makes it, as the configured default
    ``.kaygraph/`` is made); ``create=False`` opens an existing file only (``StoreNotFoundError``
    otherwise), so read-only commands never leave an empty database behind. A damaged or foreign
    file raises ``PersistenceError`` naming it.
    """

    backend = "sqlite"
    table_suffix = " WITHOUT ROWID"

    def __init__(
        self,
        path: str | Path,
        *,
        durability: str = "normal",
        timeout: float = 30.0,
        create: bool = True,
        create_dirs: bool = False,
    ) -> None:
        if durability not in DURABILITIES:
            raise PersistenceError(
                f"SQLiteStore durability must be one of {sorted(DURABILITIES)}, got {durability!r}"
            )
        self.path = Path(path)
        self.durability = durability
        in_memory = str(path) == ":memory:"
        if not in_memory:
            if not create and not self.path.is_file():
                raise StoreNotFoundError(
                    f"no SQLite store at {str(self.path)!r} (nothing was recorded there)"
                )
            if create_dirs:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.parent.is_dir():
                raise PersistenceError(
                    f"cannot create the SQLite store {str(self.path)!r}: its directory "
                    f"{str(self.path.parent)!r} does not exist. Create it first (a store URL never "
                    "creates directories, so a typo in the path does not go unnoticed)."
                )
            if self.path.is_dir():
                raise PersistenceError(f"the SQLite store path {str(self.path)!r} is a directory, not a file")
        self._lock = threading.Lock()
        try:
            self._connection = sqlite_connect(path, timeout=timeout, synchronous=DURABILITIES[durability])
        except sqlite3.Error as exc:
            raise self._driver_error(exc) from exc
        self._run(lambda cursor, retried: self.create_schema(cursor))

    def columns(self, cursor: Any) -> set[str]:
        cursor.execute(f"PRAGMA table_info({self.runs_table})")
        return {str(row[1]) for row in cursor.fetchall()}

    def _transaction(self, write: bool = True, *, single: bool = False) -> AbstractContextManager[Any]:
        return sqlite_transaction(self._lock, self._connection, write, single=single)

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)

    def _driver_error(self, exc: BaseException) -> PersistenceError:
        if not isinstance(exc, sqlite3.Error):
            return None  # type: ignore[return-value]
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return PersistenceError(
                f"the SQLite store {str(self.path)!r} is damaged or is not a database ({exc}). Restore "
                "it from a backup, or move it away to start with an empty store."
            )
        return PersistenceError(f"the SQLite store {str(self.path)!r} failed: {exc}")

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def describe(self) -> str:
        return f"sqlite:///{self.path} (WAL, durability={self.durability})"


__all__ = ["SQLiteStore"]
