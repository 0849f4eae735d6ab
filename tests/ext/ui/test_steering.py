"""Steering runs through the API: cancel a running run, fork from a step with a patch."""

from __future__ import annotations

from typing import Any

import httpx
from ui_helpers import error_of, run_pipeline, wait_for

# -- starting, cancelling, forking ---------------------------------------------------------------


def test_start_and_cancel_a_running_run(store_url: str, serve: Any) -> None:
    server = serve(store_url)
    with httpx.Client(base_url=server.url) as client:
        answer = client.post(
            "/api/runs", json={"graph": "slow", "shared": {"sleep": 0.05, "waits": 100000}, "run_id": "long"}
        )
        assert answer.status_code == 201 and answer.json()["run_id"] == "long"
        wait_for(lambda: client.get("/api/runs/long").status_code == 200, what="run 'long' to start")
        assert client.get("/api/runs/long").json()["status"] == "running"
        cancelled = client.post("/api/runs/long/cancel", json={"reason": "enough"})
        assert cancelled.status_code == 202, cancelled.text
        status = wait_for(
            lambda: (s := client.get("/api/runs/long").json()["status"]) != "running" and s, what="the cancel"
        )
        assert status == "cancelled"
        again = client.post("/api/runs/long/cancel")
        assert again.status_code == 409 and error_of(again)["culprit"] == "run_id"
        duplicate = client.post("/api/runs", json={"graph": "slow", "run_id": "long"})
        assert duplicate.status_code == 409 and "long" in error_of(duplicate)["message"]


def test_fork_from_a_step_with_a_patch(store_url: str, serve: Any) -> None:
    run_pipeline(store_url, "parent")
    server = serve(store_url)
    with httpx.Client(base_url=server.url) as client:
        # After step 2 (rounds == 1), patch loops so the fork thinks until 5 rounds.
        forked = client.post(
            "/api/runs/parent/fork", json={"step": 2, "patch": {"loops": 5, "tag": "forked"}}
        )
        assert forked.status_code == 201, forked.text
        child = forked.json()["run_id"]
        assert child != "parent"
        run = wait_for(
            lambda: (r := client.get(f"/api/runs/{child}").json())["status"] == "succeeded" and r,
            what="the fork",
        )
        parent_steps = client.get("/api/runs/parent/steps").json()["steps"]
        assert run["parent_run_id"] == "parent"
        assert run["parent_seq"] == next(step["seq"] for step in parent_steps if step["step"] == 2)
        steps = client.get(f"/api/runs/{child}/steps").json()["steps"]
        final = client.get(f"/api/runs/{child}/steps/{steps[-1]['step']}/state").json()["state"]
        assert final["answer"] == "3 docs, 5 rounds" and final["tag"] == "forked"
        parent = client.get("/api/runs/parent/steps/5/state").json()["state"]
        assert parent["answer"] == "3 docs, 3 rounds"  # the parent is untouched


def test_cancel_from_the_run_page(sqlite_url: str, serve: Any, page: Any) -> None:
    server = serve(sqlite_url)
    page.goto(server.url + "/#/runs")
    page.locator("#start-run").click()
    page.locator("#start-graph").select_option("slow")
    page.locator("#start-shared").fill('{"sleep": 0.05, "waits": 100000}')
    page.locator("#start-submit").click()
    page.locator("#run-id + .pill[data-status=running]").wait_for()
    page.locator("#cancel").click()
    page.locator("#run-id + .pill[data-status=cancelled]").wait_for(timeout=15000)
    assert page.locator("#resume").count() == 1
    run_id = page.locator("#run-id").inner_text()
    assert server.board.source.get_run(run_id)["status"] == "cancelled"
