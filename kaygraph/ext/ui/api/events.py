"""Server-sent events: a run's events (id = the run's sequence number) and run-list changes.

``GET /api/runs/{run_id}/events`` sends each event as ``id: <seq>``, ``event: <type>``,
``data: <json>``. A client that lost its connection reconnects with ``Last-Event-ID: <seq>`` (or
``?after=<seq>``) and gets every later event exactly once. ``GET /api/events`` streams run rows as
they change (``event: run``), for live lists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from ..base import jsonable
from ..errors import ApiError
from .deps import dashboard, reader

router = APIRouter(prefix="/api", tags=["events"])

#: Seconds between keep-alive comments on an idle stream (proxies close silent connections).
KEEPALIVE = 15.0
_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: dict[str, Any]) -> str:
    """One event in the SSE wire format (JSON on one ``data:`` line)."""
    data = json.dumps(jsonable(event), ensure_ascii=False, separators=(",", ":"))
    seq = event.get("seq")
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {event.get('type', 'message')}\ndata: {data}\n\n"


def _after(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None and last_event_id.strip() != "":
        try:
            return int(last_event_id.strip())
        except ValueError:
            raise ApiError(
                400, f"Last-Event-ID {last_event_id[:40]!r} is not a sequence number", culprit="last-event-id"
            ) from None
    return -1 if after is None else after


async def _stream(request: Request, context: Any) -> AsyncIterator[str]:
    async with context as subscription:
        yield "retry: 1000\n\n"
        for event in subscription.backlog:
            yield sse(event)
        while not subscription.overflowed:
            try:
                event = await asyncio.wait_for(subscription.queue.get(), KEEPALIVE)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if event.get("type") == "overflow":
                return  # the client fell behind: it reconnects with Last-Event-ID and catches up
            yield sse(event)


@router.get("/runs/{run_id}/events")
async def run_events(
    request: Request,
    run_id: str,
    after: int | None = Query(None, ge=-1, description="send events after this seq (or Last-Event-ID)"),
    role: str = Depends(reader),
) -> StreamingResponse:
    """The run's events as SSE, from after ``Last-Event-ID`` / ``after``; stays open for new ones."""
    board = dashboard(request)
    start = _after(request.headers.get("last-event-id"), after)
    await asyncio.to_thread(board.source.get_run, run_id)  # 404 before the stream starts
    return StreamingResponse(
        _stream(request, board.feed.watch_run(run_id, start)),
        media_type="text/event-stream",
        headers=_HEADERS,
    )


@router.get("/events")
async def run_changes(request: Request, role: str = Depends(reader)) -> StreamingResponse:
    """Run rows as they change (new runs, status, steps), as SSE ``run`` events."""
    board = dashboard(request)
    return StreamingResponse(
        _stream(request, board.feed.watch_runs()), media_type="text/event-stream", headers=_HEADERS
    )


__all__ = ["router", "sse"]
