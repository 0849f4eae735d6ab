"""Helpers of the UI tests: waiting for a condition, reading server-sent events, making runs fast."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from kaygraph.ext.persistence import durable


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """Parse an SSE response into ``{"id", "event", "data"}`` dicts (comments skipped)."""
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in event:
                event["data"] = json.loads(event["data"])
                yield event
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(": ")
            if field in ("id", "event", "data"):
                event[field] = value


def read_events(
    url: str, count: int, *, headers: dict[str, str] | None = None, timeout: float = 15.0, until: str = ""
) -> list[dict[str, Any]]:
    """The first ``count`` events of the SSE stream at ``url`` (or up to the run's end with
    ``until="status_end"``), then the connection is dropped."""
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers or {}, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for event in sse_events(response):
            events.append(event)
            data = event["data"]
            ended = data.get("type") in ("status", "run_end") and data.get("status") not in (None, "running")
            if len(events) >= count or (until == "status_end" and ended):
                break
    return events


def fake_runs(
    store_url: str, count: int, *, graphs: tuple[str, ...] = ("alpha", "beta"), start: float = 1.7e9
) -> list[str]:
    """``count`` run rows written straight into the store (no graph runs): fast pagination fixtures.

    Run ``i`` is created at ``start + i`` seconds (pairs share a second, to exercise ties), its
    graph cycles through ``graphs`` and its status through succeeded/failed/running.
    """
    from kaygraph.ext.persistence import RunInfo, open_store

    statuses = ("succeeded", "failed", "running")
    infos = [
        RunInfo(
            run_id=f"run-{index:05d}",
            graph_name=graphs[index % len(graphs)],
            status=statuses[index % len(statuses)],
            created_at=start + index // 2,
            updated_at=start + index // 2 + 1,
            steps=index % 7,
        )
        for index in range(count)
    ]
    store = open_store(store_url)
    try:
        if hasattr(store, "runs_table"):  # SQL stores: one multi-row transaction, not one per run
            columns = ", ".join(RunInfo.FIELDS)
            marks = ", ".join(store.placeholder for _ in RunInfo.FIELDS)
            with store._transaction() as cursor:
                cursor.executemany(
                    f"INSERT INTO {store.runs_table} ({columns}) VALUES ({marks})",
                    [info.as_row() for info in infos],
                )
        else:
            for info in infos:
                store.create_run(info, b"")
    finally:
        store.close()
    return [info.run_id for info in infos]


def run_pipeline(store_url: str, run_id: str, **shared: Any) -> None:
    from ui_graphs import pipeline

    with durable(pipeline(), store_url) as runner:
        runner.run({"loops": 3, **shared}, run_id=run_id)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON error of a refused request (and proof that it is one)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == response.status_code and error["message"]
    return error
