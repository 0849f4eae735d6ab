"""Dependencies every route shares: the dashboard object and the access checks of :mod:`..auth`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, Request

from ..errors import ApiError

if TYPE_CHECKING:
    from ..dashboard import Dashboard


def dashboard(request: Request) -> Dashboard:
    """The :class:`~kaygraph.ext.ui.dashboard.Dashboard` of the app serving ``request``."""
    board: Dashboard = request.app.state.kaygraph
    return board


async def reader(request: Request) -> str:
    """Any valid role may read; returns the role. (``async``: a check this cheap should not cost
    a hop to the thread pool.)"""
    board = dashboard(request)
    client = request.client.host if request.client else None
    role = board.auth.role(request.headers, client)
    request.state.role = role
    return role


async def writer(request: Request, role: str = Depends(reader)) -> str:
    """State-changing calls: admin role, same origin, and a JSON body (or none)."""
    board = dashboard(request)
    board.auth.check_write(request.method, request.headers, role)
    content_type = request.headers.get("content-type", "")
    length = request.headers.get("content-length")
    has_body = (length not in (None, "0")) or "transfer-encoding" in request.headers
    if has_body and content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415,
            f"send the body as JSON (Content-Type: application/json), not {content_type or 'no type'!r}",
            culprit="content-type",
        )
    return role


__all__ = ["dashboard", "reader", "writer"]
