"""``GET /api/session``: whether this dashboard needs a token and which role the caller has."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from .deps import dashboard, reader

router = APIRouter(prefix="/api", tags=["session"])


@router.get("/session")
def session(request: Request, role: str = Depends(reader)) -> dict[str, Any]:
    """The caller's role (``admin`` or ``read``), the store, the served graphs and installed extras."""
    board = dashboard(request)
    return {
        "role": role,
        "auth_required": board.auth.tokens_required,
        "title": board.title,
        "store": board.source.describe(),
        "graphs": board.catalog.names(),
        "scheduler": _scheduler_available(),
    }


@router.get("/stats")
def stats(request: Request, role: str = Depends(reader)) -> dict[str, Any]:
    """Store queries made so far (by kind) and the live feed's polls and subscribers."""
    board = dashboard(request)
    return {
        "store_queries": board.source.queries,
        "store_queries_by_method": dict(board.source.by_method),
        "feed": board.feed.stats(),
        "active_runs": board.launcher.active(),
    }


def _scheduler_available() -> bool:
    from kaygraph import ext

    return ext.status("scheduler").installed


__all__ = ["router"]
