"""Schedules of the scheduler extension (when installed): list, pause, resume, trigger.

Without the scheduler extension, ``GET /api/schedules`` answers ``{"available": false, ...}`` with
the install line, and the changing calls answer 404 naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Request

from ..base import jsonable
from ..errors import ApiError
from .deps import dashboard, reader, writer

router = APIRouter(prefix="/api", tags=["schedules"])


def _scheduler() -> Any:
    from kaygraph import ext

    status = ext.status("scheduler")
    if not status.installed:
        return None, status.reason
    import kaygraph.ext.scheduler as scheduler

    return scheduler, ""


def _store(request: Request) -> Any:
    """The dashboard's schedule store, opened once (``ui.schedule_store``, else ``scheduler.*``)."""
    board = dashboard(request)
    scheduler, reason = _scheduler()
    if scheduler is None:
        raise ApiError(404, reason, culprit="scheduler")
    store = getattr(request.app.state, "kaygraph_schedules", None)
    if store is None:
        store = scheduler.open_schedule_store(board.schedule_store)
        request.app.state.kaygraph_schedules = store
    return scheduler, store


def _schedule_dict(schedule: Any) -> dict[str, Any]:
    row = dataclasses.asdict(schedule) if dataclasses.is_dataclass(schedule) else dict(schedule)
    keep = (
        "name",
        "graph_ref",
        "trigger",
        "paused",
        "next_fire_at",
        "created_at",
        "overlap",
        "catchup",
        "missed",
        "skipped",
    )
    answer = {key: jsonable(row.get(key)) for key in keep}
    answer["trigger_text"] = _trigger_text(row.get("trigger"))
    return answer


def _trigger_text(trigger: Any) -> str | None:
    """The trigger as ``kaygraph schedules list`` says it (``every 1s``, ``cron '30 1 * * *'
    (Europe/London)``), so the page and the CLI never disagree."""
    if not trigger:
        return None
    from kaygraph.ext.scheduler.triggers import trigger_from_dict

    try:
        text: str = trigger_from_dict(trigger).describe()
    except Exception:  # a trigger this version cannot read: the page falls back to its type
        return None
    return text


@router.get("/schedules")
def list_schedules(request: Request, role: str = Depends(reader)) -> dict[str, Any]:
    """Every schedule with its trigger, next fire and whether it is paused."""
    scheduler, reason = _scheduler()
    if scheduler is None:
        return {"available": False, "reason": reason, "schedules": []}
    _, store = _store(request)
    schedules = sorted(store.list_schedules(), key=lambda item: item.name)
    return {"available": True, "schedules": [_schedule_dict(item) for item in schedules]}


def _act(request: Request, name: str, action: str) -> dict[str, Any]:
    scheduler, store = _store(request)
    if store.get_schedule(name) is None:
        known = ", ".join(sorted(item.name for item in store.list_schedules())) or "none"
        raise ApiError(404, f"no schedule named {name!r}; schedules: {known}", culprit="name")
    result = getattr(scheduler, action)(store, name)
    answer = {"name": name, "action": action}
    if action == "trigger":
        answer["run_id"] = result
    return answer


@router.post("/schedules/{name}/pause")
def pause(request: Request, name: str, role: str = Depends(writer)) -> dict[str, Any]:
    """Pause a schedule: no fires until resumed."""
    return _act(request, name, "pause")


@router.post("/schedules/{name}/resume")
def resume(request: Request, name: str, role: str = Depends(writer)) -> dict[str, Any]:
    """Resume a paused schedule."""
    return _act(request, name, "resume")


@router.post("/schedules/{name}/trigger")
def trigger(request: Request, name: str, role: str = Depends(writer)) -> dict[str, Any]:
    """Fire a schedule now (a durable run, shown in the runs list)."""
    return _act(request, name, "trigger")


__all__ = ["router"]
