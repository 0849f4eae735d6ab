"""The one interface the dashboard reads runs through: :class:`RunSource`.

The API and the live feed never touch a store directly; they ask a ``RunSource``. The shipped
implementation, :class:`~kaygraph.ext.ui.source.PersistenceSource`, reads any persistence store
(SQLite, Redis, PostgreSQL, memory); :class:`~kaygraph.ext.ui.source.CountingSource` wraps one and
counts the store queries, which is how the dashboard proves its load does not grow with its tabs.

Every method is synchronous and thread-safe; the app calls them from worker threads. Missing runs
raise :class:`~kaygraph.core.exceptions.RunNotFoundError`; a malformed cursor or step number
raises :class:`~kaygraph.ext.ui.errors.ApiError` naming the argument.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any


@dataclasses.dataclass
class Page:
    """One page of a listing, newest first for runs, oldest first for steps and events."""

    items: list[dict[str, Any]]
    #: Pass as ``cursor`` to get the next page; None when this is the last page.
    next_cursor: str | None
    #: For steps: the sequence number of the last record the page covered (events after it are
    #: news), so a client can load the history and then stream from there without a gap.
    last_seq: int | None = None


class RunSource(abc.ABC):
    """Read access to durable runs (and the few writes the dashboard makes: cancel, fork)."""

    @abc.abstractmethod
    def list_runs(
        self,
        *,
        graph: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """Runs matching the filters, newest first, ``limit`` per page (keyset pagination)."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> dict[str, Any]:
        """One run's row: status, timing, steps, error, graph name and reference, parent."""

    @abc.abstractmethod
    def list_steps(self, run_id: str, *, cursor: str | None = None, limit: int = 100) -> Page:
        """The run's kept steps, oldest first: ``{"step", "seq", "kind", "node_id", "path",
        "action", "time", "duration"}`` each."""

    @abc.abstractmethod
    def state_at(self, run_id: str, step: int) -> dict[str, Any]:
        """The shared state after step ``step`` (decoded, not yet redacted)."""

    @abc.abstractmethod
    def events_after(self, run_id: str, seq: int, *, limit: int = 500) -> list[dict[str, Any]]:
        """The run's events with a sequence number above ``seq``, by increasing ``seq``."""

    @abc.abstractmethod
    def counts(self, *, graph: str | None = None) -> dict[str, int]:
        """How many runs have each status."""

    @abc.abstractmethod
    def changes(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        """Runs whose row changed since ``cursor`` (None: start now, nothing returned) and the
        cursor to pass next time: the live runs list costs one call per poll."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the store if this source opened it."""

    def describe(self) -> str:
        """Where the runs live (no password), for the page header and ``/healthz``."""
        return type(self).__name__


__all__ = ["Page", "RunSource"]
