"""Errors of the persistence extension that the core's ``PersistenceError`` family does not cover."""

from __future__ import annotations

from kaygraph.core.exceptions import PersistenceError


class StoreNotFoundError(PersistenceError):
    """A read-only command was pointed at a store that does not exist (nothing recorded yet)."""


__all__ = ["StoreNotFoundError"]
