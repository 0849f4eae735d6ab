"""The HTTP API against a real uvicorn server, on SQLite, PostgreSQL and Redis stores."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from ui_graphs import GATES
from ui_helpers import error_of, fake_runs, read_events, run_pipeline, wait_for

# -- listing -------------------------------------------------------------------------------------


def test_pagination_walks_thousands_of_runs_without_gaps(store_url: str, serve: Any) -> None:
    ids = fake_runs(store_url, 2000)
    server = serve(store_url)
    seen: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=server.url) as client:
        while True:
            params: dict[str, Any] = {"limit": 300}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/runs", params=params).json()
            seen += page["runs"]
            cursor = page["next_cursor"]
            assert len(page["runs"]) == 300 or cursor is None
            if cursor is None:
                break
        assert sorted(run["run_id"] for run in seen) == sorted(ids)  # every run once, none twice
        keys = [(run["created_at"], run["run_id"]) for run in seen]
        assert keys == sorted(keys, reverse=True)  # newest first, ties broken by id

        # Filters combine with pagination: every failed run of graph beta, nothing else.
        expected = {f"run-{i:05d}" for i in range(2000) if i % 2 == 1 and i % 3 == 1}
        found: set[str] = set()
        cursor = None
        while True:
            params = {
                "limit": 97,
                "graph": "beta",
                "status": "failed",
                **({"cursor": cursor} if cursor else {}),
            }
            page = client.get("/api/runs", params=params).json()
            found |= {run["run_id"] for run in page["runs"]}
            assert all(run["graph"] == "beta" and run["status"] == "failed" for run in page["runs"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert found == expected

        # Time window: created in [start + 100, start + 110) holds runs 200..219.
        page = client.get(
            "/api/runs", params={"since": 1.7e9 + 100, "until": 1.7e9 + 110, "limit": 500}
        ).json()
        assert sorted(run["run_id"] for run in page["runs"]) == [f"run-{i:05d}" for i in range(200, 220)]
        iso = client.get("/api/runs", params={"since": "2023-11-14T22:15:00Z", "limit": 1}).json()
        assert iso["runs"][0]["run_id"] == "run-01999"

        counts = client.get("/api/counts").json()["counts"]
        assert counts["succeeded"] + counts["failed"] + counts["running"] == 2000
        assert counts["running"] == len([i for i in range(2000) if i % 3 == 2])


# -- one run: detail, steps, state, diff ---------------------------------------------------------


def test_run_detail_steps_state_and_diff(store_url: str, serve: Any) -> None:
    run_pipeline(store_url, "r1", note="<script>x</script>", big="y" * 5000)
    server = serve(store_url, max_value_chars=500)
    with httpx.Client(base_url=server.url) as client:
        run = client.get("/api/runs/r1").json()
        assert run["status"] == "succeeded" and run["graph"] == "pipeline" and run["steps"] == 5
        assert run["duration"] is not None and run["served"] is True

        steps = client.get("/api/runs/r1/steps", params={"limit": 2}).json()
        assert [step["node_id"] for step in steps["steps"]] == ["Load", "Think"]
        rest = client.get("/api/runs/r1/steps", params={"cursor": steps["next_cursor"], "limit": 10}).json()
        assert [step["node_id"] for step in rest["steps"]] == ["Think", "Think", "Answer"]
        assert [step["action"] for step in rest["steps"]] == ["again", "done", None]
        assert rest["next_cursor"] is None

        state = client.get("/api/runs/r1/steps/2/state").json()["state"]
        assert state["rounds"] == 1 and state["docs"] == ["a", "b", "c"]
        assert state["api_key"] == "***"  # redacted
        assert state["note"] == "<script>x</script>"  # JSON carries it verbatim; the page escapes it
        assert state["big"]["$truncated"] is True and state["big"]["size"] == 5002
        whole = client.get("/api/runs/r1/steps/2/state", params={"key": "big"}).json()
        assert whole["value"] == "y" * 5000
        secret = client.get("/api/runs/r1/steps/2/state", params={"key": "api_key"}).json()
        assert secret["value"] == "***"

        # Step 1 -> 2: Think sets rounds 0 -> 1 and adds api_key.
        diff = client.get("/api/runs/r1/diff", params={"from": 1, "to": 2}).json()
        assert diff["added"] == {"api_key": "***"}
        assert diff["changed"] == {"rounds": {"from": 0, "to": 1}}
        assert diff["removed"] == {}
        # Step 4 -> 5: Answer adds the answer and removes docs (removed values are shown).
        diff = client.get("/api/runs/r1/diff", params={"from": 4, "to": 5, "full": True}).json()
        assert diff["added"] == {"answer": "3 docs, 3 rounds"}
        assert diff["removed"] == {"docs": ["a", "b", "c"]}
        assert diff["changed"] == {}
        # Across the whole run, and backwards.
        diff = client.get("/api/runs/r1/diff", params={"from": 5, "to": 1}).json()
        assert set(diff["removed"]) == {"answer", "api_key"} and diff["added"] == {"docs": ["a", "b", "c"]}
        assert diff["changed"] == {"rounds": {"from": 3, "to": 0}}

        graph = client.get("/api/graphs/pipeline").json()
        assert [node["id"] for node in graph["nodes"]] == ["Load", "Think", "Answer"]
        assert {"source": "Think", "action": "again", "target": "Think"} in graph["edges"]
        assert graph["mermaid"].startswith("flowchart")
        assert [g["name"] for g in client.get("/api/graphs").json()["graphs"]] == ["pipeline", "slow"]
        assert client.get("/healthz").json()["status"] == "ok"
        assert "/api/runs/{run_id}/events" in client.get("/openapi.json").json()["paths"]


# -- live events ---------------------------------------------------------------------------------


def test_sse_resumes_after_a_dropped_connection_without_loss_or_repeat(store_url: str, serve: Any) -> None:
    run_pipeline(store_url, "r1")
    server = serve(store_url)
    url = f"{server.url}/api/runs/r1/events"
    everything = server.board.source.events_after("r1", -1)
    assert len(everything) >= 5
    first = read_events(url, 3)  # ... and the connection drops
    rest = read_events(url, len(everything) - 3, headers={"Last-Event-ID": first[-1]["id"]})
    ids = [int(event["id"]) for event in first + rest]
    assert ids == [event["seq"] for event in everything]  # all of them, in order, once
    assert all(int(event["id"]) == event["data"]["seq"] for event in first + rest)
    again = read_events(f"{url}?after={ids[1]}", 1)
    assert int(again[0]["id"]) == ids[2]


def test_live_events_of_a_run_in_progress_reach_every_client_from_one_poll(
    store_url: str, serve: Any
) -> None:
    server = serve(store_url)
    GATES["live"] = gate = threading.Event()
    with httpx.Client(base_url=server.url) as client:
        started = client.post(
            "/api/runs", json={"graph": "slow", "shared": {"gate": "live", "sleep": 30, "waits": 3}}
        )
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        wait_for(lambda: client.get(f"/api/runs/{run_id}").status_code == 200, what="the run to exist")
        results: list[list[dict[str, Any]]] = [[] for _ in range(5)]

        def watch(index: int) -> None:
            results[index] = read_events(f"{server.url}/api/runs/{run_id}/events", 6, timeout=30)

        watchers = [threading.Thread(target=watch, args=(index,)) for index in range(5)]
        for thread in watchers:
            thread.start()
        wait_for(lambda: server.board.feed.stats()["run_subscribers"] == 5, what="5 subscribers")
        before = dict(server.board.source.by_method)
        polls = server.board.feed.polls
        gate.set()
        for thread in watchers:
            thread.join(30)
        assert all(len(events) == 6 for events in results)
        assert all([e["id"] for e in events] == [e["id"] for e in results[0]] for events in results)
        node_ends = [e for e in results[0] if e["event"] == "node_end"]
        assert [e["data"]["node_id"] for e in node_ends][:2] == ["Wait", "Wait"]
        # One events query per poll for the one watched run, not one per client.
        event_queries = server.board.source.by_method.get("events_after", 0) - before.get("events_after", 0)
        assert event_queries <= server.board.feed.polls - polls + 1


def test_events_of_a_run_in_another_process_arrive_through_the_store(store_url: str, serve: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    server = serve(store_url)
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[2]);"
        "from ui_graphs import slow; from kaygraph.ext.persistence import durable;"
        "durable(slow(), sys.argv[1]).run({'sleep': 0.15, 'waits': 6}, run_id='elsewhere')"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, store_url, str(Path(__file__).parent)])
    try:
        with httpx.Client(base_url=server.url) as client:
            wait_for(
                lambda: client.get("/api/runs/elsewhere").status_code == 200, what="the other process's run"
            )
        events = read_events(f"{server.url}/api/runs/elsewhere/events", 100, until="status_end", timeout=30)
    finally:
        writer.wait(30)
    node_ends = [event["data"] for event in events if event["event"] == "node_end"]
    assert [event["node_id"] for event in node_ends] == ["Wait"] * 6 + ["Load"]
    assert [event["step"] for event in node_ends] == list(range(1, 8))
    seqs = [int(event["id"]) for event in events]
    assert seqs == sorted(set(seqs))  # increasing, no repeats
    assert events[-1]["data"]["status"] == "succeeded"


def test_cancel_of_a_run_in_another_process_goes_through_the_store(store_url: str, serve: Any) -> None:
    """The dashboard did not start this run: the cancel is a request in the store, which the
    other process's writer honours (its run ends ``cancelled``, resumable)."""
    import subprocess
    import sys
    from pathlib import Path

    server = serve(store_url)
    script = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from ui_graphs import slow; from kaygraph.ext.persistence import durable;"
        "from kaygraph import RunCancelled\n"
        "try:\n"
        "    durable(slow(), sys.argv[1]).run({'sleep': 0.1, 'waits': 3000}, run_id='far')\n"
        "except RunCancelled as exc:\n"
        "    print('cancelled:', exc.reason)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script, store_url, str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=server.url) as client:
            wait_for(
                lambda: client.get("/api/runs/far").status_code == 200
                and client.get("/api/runs/far").json()["status"] == "running",
                timeout=60,
                what="the other process's run",
            )
            answer = client.post("/api/runs/far/cancel", json={"reason": "stop from the board"})
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"run_id": "far", "cancel": "requested"}
            wait_for(
                lambda: client.get("/api/runs/far").json()["status"] == "cancelled",
                timeout=60,
                what="the run to end cancelled",
            )
        out, _ = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0
    assert "cancelled: stop from the board" in out


# -- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_a_4xx_naming_the_culprit(store_url: str, serve: Any) -> None:
    run_pipeline(store_url, "r1")
    server = serve(store_url)
    with httpx.Client(base_url=server.url) as client:
        cases = [
            (client.get("/api/runs/nope"), 404, "run_id", "nope"),
            (client.get("/api/runs/nope/steps"), 404, "run_id", "nope"),
            (client.get("/api/runs/nope/events"), 404, "run_id", "nope"),
            (client.get("/api/runs", params={"cursor": "garbage!"}), 400, "cursor", "garbage"),
            (client.get("/api/runs", params={"status": "finished"}), 400, "status", "finished"),
            (client.get("/api/runs", params={"since": "yesterday"}), 400, "since", "yesterday"),
            (client.get("/api/runs", params={"limit": 0}), 422, "limit", "limit"),
            (client.get("/api/runs/r1/steps/99/state"), 404, "step", "99"),
            (client.get("/api/runs/r1/steps/2/state", params={"key": "nokey"}), 404, "key", "nokey"),
            (client.get("/api/runs/r1/diff", params={"from": 1}), 422, "to", "to"),
            (
                client.get("/api/runs/r1/events", headers={"Last-Event-ID": "abc"}),
                400,
                "last-event-id",
                "abc",
            ),
            (client.get("/api/graphs/pipelin"), 404, "graph", "pipeline"),
            (client.get("/api/nothing"), 404, "path", "/api/nothing"),
            (
                client.post("/api/runs", content=b"{oops", headers={"Content-Type": "application/json"}),
                400,
                "body",
                "JSON",
            ),
            (client.post("/api/runs", json={"graph": "nope"}), 404, "graph", "nope"),
            (
                client.post("/api/runs", json={"graph": "slow", "shared": [1]}),
                422,
                "body.shared",
                "dictionary",
            ),
            (client.post("/api/runs", json={"graph": "slow", "colour": 1}), 422, "body.colour", "colour"),
            (
                client.post("/api/runs", content=b"graph=slow", headers={"Content-Type": "text/plain"}),
                415,
                "content-type",
                "JSON",
            ),
            (
                client.post(
                    "/api/runs/r1/fork",
                    content=b'{"step": 1, "patch": {"x": NaN}}',
                    headers={"Content-Type": "application/json"},
                ),
                422,
                "patch.x",
                "NaN",
            ),
            (client.post("/api/runs/nope/fork", json={"step": 1}), 404, "run_id", "nope"),
            (client.post("/api/runs/r1/cancel"), 409, "run_id", "succeeded"),
            (client.post("/api/runs/r1/resume"), 409, "run_id", "succeeded"),
        ]
        for response, status, culprit, text in cases:
            error = error_of(response)
            assert (response.status_code, error["culprit"]) == (status, culprit), (
                response.request.url,
                response.text,
            )
            assert text in error["message"], (response.request.url, error["message"])


def test_schedules_report_when_the_scheduler_is_not_installed(sqlite_url: str, serve: Any) -> None:
    from kaygraph import ext

    server = serve(sqlite_url)
    answer = httpx.get(f"{server.url}/api/schedules").json()
    installed = ext.status("scheduler").installed
    assert answer["available"] is installed
    if not installed:
        assert "pip install" in answer["reason"] and answer["schedules"] == []


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/app.css"])
def test_the_pages_are_served_by_the_package(sqlite_url: str, serve: Any, path: str) -> None:
    server = serve(sqlite_url)
    response = httpx.get(server.url + path)
    assert response.status_code == 200 and len(response.text) > 100
    if path == "/":
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "http" not in response.text.replace("http-equiv", "")  # no CDN, nothing remote
