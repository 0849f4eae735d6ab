"""How KayGraph's SQLite stores (runs, schedules) open their file and run a transaction, written once.

A store keeps one connection in autocommit mode, shared by its threads under a lock; WAL lets
readers in other processes go on while one writes, and every multi-statement write takes the
database lock up front (``BEGIN IMMEDIATE``), so concurrent processes queue for up to ``timeout``
seconds instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path


def connect(path: str | Path, *, timeout: float, synchronous: str = "NORMAL") -> sqlite3.Connection:
    """A connection to the SQLite file ``path`` (or ``":memory:"``) set up as the stores use it.

    Raises :class:`sqlite3.Error`; the caller turns it into its own error naming the file.
    """
    connection = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if str(path) != ":memory:":
            connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
    except BaseException:
        connection.close()
        raise
    return connection


class _Locked:
    """A cursor under a lock and nothing else (autocommit). A class, not a generator: it is the
    hot path of every durable step's single INSERT, and a generator context costs three times more."""

    __slots__ = ("_connection", "_lock")

    def __init__(self, lock: threading.Lock, connection: sqlite3.Connection) -> None:
        self._lock, self._connection = lock, connection

    def __enter__(self) -> sqlite3.Cursor:
        self._lock.acquire()
        try:
            return self._connection.cursor()
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


@contextlib.contextmanager
def _immediate(lock: threading.Lock, connection: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    with lock:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")


def transaction(
    lock: threading.Lock, connection: sqlite3.Connection, write: bool = True, *, single: bool = False
) -> AbstractContextManager[sqlite3.Cursor]:
    """A cursor under ``lock``; with ``write`` (and not ``single``) inside ``BEGIN IMMEDIATE`` ...
    ``COMMIT`` (rolled back if the block raises). ``single=True`` promises one statement, atomic
    by itself, so it runs in autocommit mode: one step instead of three."""
    if not write or single:  # autocommit: a lone write statement takes the lock itself
        return _Locked(lock, connection)
    return _immediate(lock, connection)


__all__ = ["connect", "transaction"]
