"""Dashboard speed: run listing over 100,000 runs, a 1,000-step run's pages, live-event latency.

    .venv/bin/python bench/ui_speed.py [--runs 100000] [--requests 200] [--clients 50]
        [--postgres postgresql://postgres@127.0.0.1:5432/test] [--skip-postgres]

The dashboard runs as ``kaygraph ui`` in its own process (as users run it); requests come from
this process over HTTP on 127.0.0.1. Prints p50/p95 in milliseconds against the goals:

- ``GET /api/runs?limit=50`` with 100,000 runs in SQLite (goal p95 <= 50 ms) and PostgreSQL:
  the first page, a page deep in the listing (via its cursor) and a filtered page;
- a run with 1,000 steps: its detail and a steps page (goal p95 <= 200 ms);
- node end -> SSE event at a client, with 1 and with ``--clients`` clients watching one run that
  a third process executes (goal p95 <= 250 ms), and the store queries per second the dashboard
  makes meanwhile (should not grow with the clients).

No peer: no open-source runs dashboard ships a comparable HTTP API to time against (Burr's and
Prefect's UIs are measured in the issue's text); the numbers are absolute, goals beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from kaygraph import Graph, Node

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def fill_runs(store_url: str, count: int) -> None:
    """``count`` run rows in one transaction (a real store, written without running graphs)."""
    from kaygraph.ext.persistence import RunInfo, open_store

    statuses = ("succeeded", "succeeded", "succeeded", "failed", "running")
    start = time.time() - count
    rows = [
        RunInfo(
            run_id=f"bench-{index:06d}",
            graph_name=("ingest", "answer", "report")[index % 3],
            status=statuses[index % len(statuses)],
            created_at=start + index,
            updated_at=start + index + 2,
            steps=index % 12,
        ).as_row()
        for index in range(count)
    ]
    store = open_store(store_url)
    try:
        columns = ", ".join(RunInfo.FIELDS)
        marks = ", ".join(store.placeholder for _ in RunInfo.FIELDS)  # type: ignore[attr-defined]
        with store._transaction() as cursor:  # type: ignore[attr-defined]
            cursor.executemany(f"INSERT INTO {store.runs_table} ({columns}) VALUES ({marks})", rows)  # type: ignore[attr-defined]
    finally:
        store.close()


class Dashboard:
    """``kaygraph ui`` in a subprocess; ``url`` once it listens."""

    def __init__(self, store_url: str, *graphs: str) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "kaygraph", "ui", "--store", store_url, "--port", "0"]
        if graphs:
            command += ["--graphs", *graphs]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("KayGraph dashboard: "):
            problem = self.process.stderr.read() if self.process.stderr else ""
            raise RuntimeError(f"kaygraph ui did not start: {line}{problem}")
        self.url = line.split()[2].rstrip("/")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def time_get(client: httpx.Client, path: str, requests: int) -> tuple[float, float]:
    """p50 and p95 of ``GET path`` in ms (after 5 warm-up requests)."""
    for _ in range(5):
        client.get(path).raise_for_status()
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(path).raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return percentile(timings, 0.5), percentile(timings, 0.95)


def report(label: str, p50: float, p95: float, goal: float | None) -> None:
    verdict = "" if goal is None else ("  ok" if p95 <= goal else "  OVER GOAL")
    goal_text = f"(goal p95 <= {goal:.0f} ms)" if goal is not None else ""
    print(f"  {label:<46} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms  {goal_text}{verdict}")


def bench_listing(store_url: str, name: str, runs: int, requests: int) -> None:
    print(f"\n{name}: GET /api/runs?limit=50 with {runs:,} runs")
    started = time.perf_counter()
    fill_runs(store_url, runs)
    print(f"  (wrote {runs:,} run rows in {time.perf_counter() - started:.1f} s)")
    dashboard = Dashboard(store_url)
    try:
        with httpx.Client(base_url=dashboard.url, timeout=30) as client:
            report(
                "GET /healthz (the HTTP floor on this machine)", *time_get(client, "/healthz", requests), None
            )
            report("first page", *time_get(client, "/api/runs?limit=50", requests), 50)
            cursor = None
            for _ in range(runs // 2 // 500):  # about halfway down, 500 runs at a time
                page = client.get(
                    "/api/runs", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
                )
                cursor = page.json()["next_cursor"]
            deep = "/api/runs?limit=50" + (f"&cursor={cursor}" if cursor else "")
            report("a page halfway down (cursor)", *time_get(client, deep, requests), 50)
            report(
                "filtered: graph=answer&status=failed",
                *time_get(client, "/api/runs?limit=50&graph=answer&status=failed", requests),
                50,
            )
    finally:
        dashboard.stop()


# -- a long run ----------------------------------------------------------------------------------


class Tick(Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["count"] = shared.get("count", 0) + 1
        while shared["count"] == 1 and shared.get("gate") and not os.path.exists(shared["gate"]):
            time.sleep(0.005)  # the live benchmark opens the gate once every client is listening
        shared["log"] = f"step {shared['count']}"
        time.sleep(shared.get("pause", 0.0))
        return "again" if shared["count"] < shared.get("steps", 1000) else "done"


class Stop(Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["stopped"] = True


def ticker() -> Graph:
    tick = Tick()
    tick - "again" >> tick
    tick - "done" >> Stop()
    return Graph(start=tick, name="ticker", max_steps=None)


def bench_long_run(store_url: str, requests: int) -> None:
    from kaygraph.ext.persistence import durable

    print("\nA run with 1,000 steps (SQLite)")
    with durable(ticker(), store_url, keep_snapshots=None) as runner:
        runner.run({"steps": 1000}, run_id="long")
    dashboard = Dashboard(store_url)
    try:
        with httpx.Client(base_url=dashboard.url, timeout=30) as client:
            report("GET /api/runs/long", *time_get(client, "/api/runs/long", requests), 200)
            report(
                "GET /api/runs/long/steps?limit=100",
                *time_get(client, "/api/runs/long/steps?limit=100", requests),
                200,
            )
            first = client.get("/api/runs/long/steps?limit=500").json()["next_cursor"]
            report(
                "a steps page after step 500 (cursor)",
                *time_get(client, f"/api/runs/long/steps?limit=100&cursor={first}", requests),
                200,
            )
            report(
                "GET /api/runs/long/steps/900/state",
                *time_get(client, "/api/runs/long/steps/900/state", requests),
                200,
            )
    finally:
        dashboard.stop()


# -- live latency ----------------------------------------------------------------------------------

RUNNER = """
import sys, time
sys.path.insert(0, {here!r})
from ui_speed import ticker
from kaygraph.ext.persistence import durable
with durable(ticker(), {store!r}, keep_snapshots=None) as runner:
    runner.run({{"steps": {steps}, "pause": {pause}, "gate": {gate!r}}}, run_id={run_id!r})
"""


async def watch(url: str, run_id: str, latencies: list[float], opened: list[float]) -> None:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", f"{url}/api/runs/{run_id}/events") as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event.get("type") == "node_end" and opened and event.get("time", 0) >= opened[0]:
                latencies.append((time.time() - event["time"]) * 1000)
            if event.get("type") == "status" and event.get("status") not in (None, "running"):
                return


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    """``GET /api/stats``, retried once when the server closed an idle keep-alive connection."""
    for attempt in range(3):
        try:
            answer: dict[str, Any] = (await client.get("/api/stats")).json()
            return answer
        except httpx.TransportError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def live(
    url: str, store_url: str, clients: int, run_id: str, steps: int, pause: float, gate: str
) -> tuple[list[float], float, float]:
    """Latencies (ms) of node-end events at ``clients`` clients; store queries and polls per second.

    The run starts in another process and waits at its first node until every client listens,
    so only live events are timed (no backlog)."""
    latencies: list[float] = []
    opened: list[float] = []
    script = RUNNER.format(
        here=str(Path(__file__).parent), store=store_url, steps=steps, pause=pause, run_id=run_id, gate=gate
    )
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(1000):
            if (await client.get(f"/api/runs/{run_id}")).status_code == 200:
                break
            await asyncio.sleep(0.02)
        tasks = [asyncio.create_task(watch(url, run_id, latencies, opened)) for _ in range(clients)]
        while (await stats(client))["feed"]["run_subscribers"] < clients:
            await asyncio.sleep(0.05)
        before = await stats(client)
        opened.append(time.time())
        Path(gate).touch()
        started = time.monotonic()
        await process.wait()
        elapsed = time.monotonic() - started
        after = await stats(client)
        await asyncio.wait(tasks, timeout=30)
        for task in tasks:
            task.cancel()
    queries = (after["store_queries"] - before["store_queries"] - 1) / elapsed  # minus the stats call
    polls = (after["feed"]["polls"] - before["feed"]["polls"]) / elapsed
    return latencies, queries, polls


def bench_live(store_url: str, clients: int) -> None:
    print(f"\nLive: node end -> SSE event at a client (SQLite, run in another process, {clients} clients)")
    dashboard = Dashboard(store_url)
    try:
        for count in (1, clients):
            gate = f"{tempfile.gettempdir()}/kaygraph-bench-gate-{os.getpid()}-{count}"
            latencies, qps, polls = asyncio.run(
                live(dashboard.url, store_url, count, f"live-{count}", 40, 0.1, gate)
            )
            os.unlink(gate)
            report(
                f"{count} client(s): {len(latencies)} events",
                percentile(latencies, 0.5),
                percentile(latencies, 0.95),
                250,
            )
            print(f"  {'':<46} store queries/s while watching: {qps:.1f} ({polls:.1f} polls/s)")
    finally:
        dashboard.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("KAYGRAPH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", choices=("listing", "long", "live"), help="run one part")
    args = parser.parse_args()
    parts = {args.only} if args.only else {"listing", "long", "live"}
    with tempfile.TemporaryDirectory() as directory:
        if "listing" in parts:
            bench_listing(f"sqlite:///{directory}/list.db", "SQLite", args.runs, args.requests)
        if "listing" in parts and not args.skip_postgres:
            import uuid

            import psycopg

            schema = f"kgbench_{uuid.uuid4().hex[:8]}"
            try:
                bench_listing(f"{args.postgres}?schema={schema}", "PostgreSQL", args.runs, args.requests)
            finally:
                with psycopg.connect(args.postgres, autocommit=True) as connection:
                    connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        if "long" in parts:
            bench_long_run(f"sqlite:///{directory}/long.db", args.requests)
        if "live" in parts:
            bench_live(f"sqlite:///{directory}/live.db", args.clients)


if __name__ == "__main__":
    main()
