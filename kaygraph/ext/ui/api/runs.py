"""Runs: list, detail, steps, state at a step, diffs, and start / cancel / resume / fork."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..base import diff_states, jsonable, present, present_diff
from ..errors import ApiError
from ..source import STATUSES
from .deps import dashboard, reader, writer

router = APIRouter(prefix="/api", tags=["runs"])

#: Largest page a client may ask for.
MAX_LIMIT = 500


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds or an ISO 8601 time (``2026-12-01T09:00:00Z``); ``ApiError`` naming ``name``."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        pass
    import datetime

    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400,
            f"{name}={value!r} is not a time: use epoch seconds or ISO 8601 (2026-12-01T09:00:00Z)",
            culprit=name,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


@router.get("/runs")
def list_runs(
    request: Request,
    graph: str | None = None,
    status: str | None = None,
    since: str | None = Query(None, description="created at or after (epoch seconds or ISO 8601)"),
    until: str | None = Query(None, description="created before (epoch seconds or ISO 8601)"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(50, ge=1, le=MAX_LIMIT),
    role: str = Depends(reader),
) -> dict[str, Any]:
    """Runs, newest first, keyset-paginated: pass ``next_cursor`` back as ``cursor``."""
    if status is not None and status not in STATUSES:
        raise ApiError(
            400, f"status={status!r} is not a run status; use one of {', '.join(STATUSES)}", culprit="status"
        )
    board = dashboard(request)
    page = board.source.list_runs(
        graph=graph or None,
        status=status,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
        cursor=cursor or None,
        limit=limit,
    )
    return {"runs": page.items, "next_cursor": page.next_cursor}


@router.get("/counts")
def counts(request: Request, graph: str | None = None, role: str = Depends(reader)) -> dict[str, Any]:
    """How many runs have each status (optionally of one graph)."""
    return {"counts": dashboard(request).source.counts(graph=graph or None)}


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: str, role: str = Depends(reader)) -> dict[str, Any]:
    """Status, timing, steps, error (with traceback when recorded), graph and parent of one run."""
    board = dashboard(request)
    run = board.source.get_run(run_id)
    run["served"] = run.get("graph") in board.catalog
    run["active_here"] = run_id in board.launcher.active()
    return run


@router.get("/runs/{run_id}/steps")
def list_steps(
    request: Request,
    run_id: str,
    cursor: str | None = None,
    limit: int = Query(100, ge=1, le=MAX_LIMIT),
    role: str = Depends(reader),
) -> dict[str, Any]:
    """The run's steps, oldest first, paginated."""
    page = dashboard(request).source.list_steps(run_id, cursor=cursor or None, limit=limit)
    return {"steps": page.items, "next_cursor": page.next_cursor, "last_seq": page.last_seq}


@router.get("/runs/{run_id}/steps/{step}/state")
def state_at(
    request: Request,
    run_id: str,
    step: int,
    key: str | None = Query(None, description="return this top-level key's whole value only"),
    full: bool = Query(False, description="do not truncate large values"),
    role: str = Depends(reader),
) -> dict[str, Any]:
    """The shared state after step ``step``: secret-looking keys hidden, big values cut unless ``full``."""
    board = dashboard(request)
    state = board.source.state_at(run_id, step)
    if key is not None:
        if key not in state:
            known = ", ".join(sorted(map(str, state))) or "none"
            raise ApiError(
                404, f"the state after step {step} has no key {key!r}; keys: {known}", culprit="key"
            )
        return {"run_id": run_id, "step": step, "key": key, "value": jsonable(board.redact(state[key], key))}
    limit = None if full else board.max_value_chars
    return {"run_id": run_id, "step": step, "state": present(state, board.redact, max_chars=limit)}


@router.get("/runs/{run_id}/diff")
def diff(
    request: Request,
    run_id: str,
    from_step: int = Query(..., alias="from", ge=0),
    to_step: int = Query(..., alias="to", ge=0),
    full: bool = False,
    role: str = Depends(reader),
) -> dict[str, Any]:
    """Keys added, removed and changed (with values) between the states after two steps."""
    board = dashboard(request)
    before = board.source.state_at(run_id, from_step)
    after = board.source.state_at(run_id, to_step)
    changes = present_diff(diff_states(before, after), board.redact, None if full else board.max_value_chars)
    return {"run_id": run_id, "from": from_step, "to": to_step, **changes}


# -- state-changing calls ------------------------------------------------------------------------


class StartRun(BaseModel):
    """Body of ``POST /api/runs``."""

    model_config = ConfigDict(extra="forbid")
    graph: str = Field(description="name of a graph this dashboard serves (GET /api/graphs)")
    shared: dict[str, Any] = Field(default_factory=dict, description="the initial shared store")
    params: dict[str, Any] | None = Field(None, description="graph params (graph.set_params)")
    run_id: str | None = Field(None, min_length=1, max_length=200, description="default: a random id")


class CancelRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("cancelled from the dashboard", max_length=500)


class ForkRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int = Field(ge=0, description="continue from the state after this step")
    patch: dict[str, Any] | None = Field(None, description="top-level keys to set in that state")


def _check_json(value: Any, culprit: str) -> None:
    """Values from JSON are JSON; re-encoding catches only what pydantic let through (NaN...)."""
    try:
        json.dumps(value, allow_nan=False)
    except ValueError as exc:
        raise ApiError(
            422,
            f"{culprit} does not serialize as JSON ({exc}): NaN and Infinity have no JSON form",
            culprit=culprit,
        ) from None


@router.post("/runs", status_code=201)
def start_run(request: Request, body: StartRun, role: str = Depends(writer)) -> dict[str, Any]:
    """Start a durable run of a served graph; returns its id at once (follow it with the events stream)."""
    board = dashboard(request)
    _check_json(body.shared, "shared")
    run_id = board.launcher.start(body.graph, body.shared, params=body.params, run_id=body.run_id)
    return {"run_id": run_id, "graph": body.graph, "status": "running"}


@router.post("/runs/{run_id}/cancel", status_code=202)
def cancel_run(
    request: Request, run_id: str, body: CancelRun | None = None, role: str = Depends(writer)
) -> dict[str, Any]:
    """Cancel a running run (it ends with status ``cancelled`` and can be resumed)."""
    board = dashboard(request)
    how = board.launcher.cancel(run_id, (body or CancelRun()).reason)
    return {"run_id": run_id, "cancel": how}


@router.post("/runs/{run_id}/resume", status_code=202)
def resume_run(request: Request, run_id: str, role: str = Depends(writer)) -> dict[str, Any]:
    """Resume an unfinished (failed, cancelled or crashed) run in this dashboard's process."""
    board = dashboard(request)
    board.launcher.resume(run_id)
    return {"run_id": run_id, "status": "running"}


@router.post("/runs/{run_id}/fork", status_code=201)
def fork_run(request: Request, run_id: str, body: ForkRun, role: str = Depends(writer)) -> dict[str, Any]:
    """A new run that continues this one from after ``step``, with ``patch`` applied to the state."""
    board = dashboard(request)
    if body.patch is not None:
        for key, value in body.patch.items():
            _check_json(value, f"patch.{key}")
    new_id = board.launcher.fork(run_id, body.step, body.patch)
    return {"run_id": new_id, "parent_run_id": run_id, "parent_step": body.step, "status": "pending"}


__all__ = ["router"]
