"""Persistence speed: per-step checkpoint cost of durable KayGraph runs, next to LangGraph and SQLite.

    .venv/bin/python bench/persistence_speed.py [--rounds 5] [--steps 2000]

On a 2,000-step two-node loop (state: a counter and a short note) it measures, in one run:

* KayGraph with the SQLite file store at the default durability (``normal``: WAL +
  synchronous=NORMAL, survives a killed process) and at ``full`` (synchronous=FULL, survives power
  loss), full history kept (so bytes/step is the real growth);
* the floors: a bare ``sqlite3`` INSERT of the JSON state with one commit per step, WAL +
  synchronous=NORMAL and synchronous=FULL;
* LangGraph 1.x with ``SqliteSaver`` as shipped (WAL, SQLite's default synchronous=FULL) on the
  same loop, in its own venv (bench/.venvs/langgraph, created from PyPI on first use);
* steps/s of the Redis and PostgreSQL stores when those servers are reachable;
* the same loop writing a ``node_start`` event before every node (``live_threshold=0``, what a
  dashboard watching fast nodes would cost; the default writes it only before slow nodes);
* the same loop with an untouched 450 KB list in the state (goal: <= 2x the small-state step);
* a growing chat (issue 10): one node appending one 80-character message per step, 5,000 steps,
  default settings: per-step cost around step 100 vs the last 100 steps (goal ratio <= 1.5),
  database bytes vs the final state (goal <= 3x), the state at a step of the kept history
  (goal <= 100 ms), reading the kept history (``runs show``: steps without state; and every
  state, streamed, with its peak Python memory vs one state: goal < 10x), and LangGraph's
  SqliteSaver on the same chat (``operator.add`` reducer).

Rounds alternate the contenders so machine noise hits all alike; every figure is a median.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _peers import median, peer_python

from kaygraph import Graph, Node
from kaygraph.ext.persistence import SQLiteStore, durable, open_store

try:  # the read API (absent before issue 10: the figures for it are then skipped)
    from kaygraph.ext.persistence import iter_steps, state_at
except ImportError:  # pragma: no cover - benchmarking an older version
    iter_steps = state_at = None

HERE = Path(__file__).resolve().parent

LANGGRAPH = ["langgraph>=1.0,<2", "langgraph-checkpoint-sqlite"]
REDIS_URL = os.environ.get("KAYGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("KAYGRAPH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
INITIAL = {"count": 0, "note": "hello world"}


def loop_graph(steps: int) -> Graph:
    """Two nodes, a -> b -> a ..., each adding one to the counter, ``steps`` node runs in all."""

    class A(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["count"] += 1
            return "next"

    class B(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["count"] += 1
            return "again" if shared["count"] < steps else "done"

    a, b = A(), B()
    a - "next" >> b
    b - "again" >> a
    b - "done" >> Node(node_id="end")
    return Graph(a, name="loop")


#: ~450 KB of JSON that no node touches.
BIG = [{"id": index, "text": f"document {index:05d} " + "x" * 60} for index in range(5200)]


def chat_message(index: int) -> dict[str, str]:
    """An 80-character chat message (the same one the LangGraph peer appends)."""
    role = "user" if index % 2 == 0 else "assistant"
    return {"role": role, "content": f"message {index:05d}: " + "lorem ipsum dolor sit amet " * 3}


def chat_graph(steps: int, stamps: list[float]) -> Graph:
    """One node appending one message per step to ``shared["messages"]``, ``steps`` times."""

    class Chat(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            stamps.append(time.perf_counter())
            messages = shared["messages"]
            messages.append(chat_message(len(messages)))
            return "again" if len(messages) < steps else "done"

    chat = Chat(node_id="chat")
    chat - "again" >> chat
    chat - "done" >> Node(node_id="end")
    return Graph(chat, name="chat")


def kaygraph_chat(directory: Path, steps: int) -> dict[str, float]:
    """The growing chat on a fresh SQLite file with default settings."""
    path = directory / "kaygraph-chat.db"
    store = SQLiteStore(path)
    stamps: list[float] = []
    runner = durable(chat_graph(steps, stamps), store)
    started = time.perf_counter()
    result = runner.run({"messages": []}, run_id="chat")
    total = time.perf_counter() - started
    gaps = [(later - earlier) * 1e6 for earlier, later in itertools.pairwise(stamps)]
    figures = {
        "early_us": statistics.median(gaps[50:150]),
        "late_us": statistics.median(gaps[-100:]),
        "total_s": total,
        "state_bytes": len(json.dumps(result.shared, separators=(",", ":"))),
    }
    if state_at is not None:
        timings = []
        for step in (steps - 900, steps // 2 + steps // 3, steps):
            began = time.perf_counter()
            state_at(store, "chat", step=step)
            timings.append(time.perf_counter() - began)
        figures["state_at_ms"] = max(timings) * 1e3
        tracemalloc.start()
        state_at(store, "chat")
        one_state = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        began = time.perf_counter()
        listed = sum(1 for _ in iter_steps(store, "chat", decode=False))
        figures["show_s"] = time.perf_counter() - began
        began = time.perf_counter()
        decoded = sum(1 for _ in iter_steps(store, "chat"))
        figures["history_s"] = time.perf_counter() - began
        tracemalloc.start()  # a second pass: tracing slows allocation-heavy code down a lot
        for index, _ in enumerate(iter_steps(store, "chat")):
            if index == 300:
                break
        figures["history_peak_ratio"] = tracemalloc.get_traced_memory()[1] / one_state
        tracemalloc.stop()
        figures["kept_steps"] = float(min(listed, decoded))
    else:
        began = time.perf_counter()
        runner.steps("chat")
        figures["history_s"] = time.perf_counter() - began
    store.close()
    figures["db_bytes"] = db_bytes(path)
    return figures


def kaygraph_big(directory: Path, steps: int) -> float:
    """us/step of the two-node loop with an untouched 450 KB list in the state."""
    path = directory / "kaygraph-big.db"
    store = SQLiteStore(path)
    runner = durable(loop_graph(steps), store, keep_snapshots=None)
    started = time.perf_counter()
    runner.run({**INITIAL, "big": BIG}, run_id="big")
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed / steps * 1e6


def kaygraph_live(directory: Path, steps: int) -> float:
    """us/step of the two-node loop writing a node_start event before every node."""
    path = directory / "kaygraph-live.db"
    store = SQLiteStore(path)
    runner = durable(loop_graph(steps), store, keep_snapshots=None, live_threshold=0)
    started = time.perf_counter()
    runner.run(dict(INITIAL), run_id="live")
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed / steps * 1e6


def langgraph_chat(python: str, directory: Path, steps: int) -> dict[str, Any]:
    out = subprocess.run(
        [python, str(HERE / "_persistence_langgraph_chat.py"), str(directory), str(steps)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def db_bytes(path: Path) -> int:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path.stat().st_size


def kaygraph_sqlite(directory: Path, steps: int, durability: str, tag: str) -> tuple[float, float]:
    """(us/step, bytes/step) of a durable run on a fresh SQLite file, full history kept."""
    path = directory / f"kaygraph-{tag}.db"
    store = SQLiteStore(path, durability=durability)
    runner = durable(loop_graph(steps), store, keep_snapshots=None)
    started = time.perf_counter()
    result = runner.run(dict(INITIAL), run_id="bench")
    elapsed = time.perf_counter() - started
    store.close()
    assert result.shared["count"] == steps
    return elapsed / steps * 1e6, db_bytes(path) / steps


def kaygraph_plain(steps: int) -> float:
    """us/step of the same loop without persistence (the engine's own cost)."""
    graph = loop_graph(steps)
    started = time.perf_counter()
    graph.run(dict(INITIAL))
    return (time.perf_counter() - started) / steps * 1e6


def sqlite_floor(directory: Path, steps: int, synchronous: str, tag: str) -> tuple[float, float]:
    """A bare INSERT of the JSON state per step, one commit each: the cost of durability itself."""
    path = directory / f"floor-{tag}.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    connection.execute(
        "CREATE TABLE steps (run_id TEXT, step INTEGER, state TEXT, PRIMARY KEY (run_id, step))"
    )
    connection.commit()
    state = dict(INITIAL)
    started = time.perf_counter()
    for step in range(steps):
        state["count"] = step + 1
        connection.execute("INSERT INTO steps VALUES (?, ?, ?)", ("bench", step, json.dumps(state)))
        connection.commit()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed / steps * 1e6, db_bytes(path) / steps


def langgraph(python: str, directory: Path, steps: int) -> dict[str, Any]:
    out = subprocess.run(
        [python, str(HERE / "_persistence_langgraph.py"), str(directory), str(steps)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((parts.hostname or "127.0.0.1", parts.port or default_port)) == 0


def server_steps_per_second(url: str, steps: int, cleanup: Callable[[], None]) -> float:
    store = open_store(url)
    runner = durable(loop_graph(steps), store, keep_snapshots=None)
    try:
        started = time.perf_counter()
        runner.run(dict(INITIAL), run_id=f"bench-{os.getpid()}-{time.time_ns()}")
        return steps / (time.perf_counter() - started)
    finally:
        store.close()
        cleanup()


def redis_cleanup(prefix: str) -> Callable[[], None]:
    def drop() -> None:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()

    return drop


def postgres_cleanup(schema: str) -> Callable[[], None]:
    def drop() -> None:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--chat-steps", type=int, default=5000)
    parser.add_argument("--chat-rounds", type=int, default=1, help="rounds of the (long) chat loop")
    parser.add_argument("--no-peer", action="store_true", help="skip LangGraph (no PyPI access)")
    args = parser.parse_args()
    steps = args.steps
    python = None if args.no_peer else peer_python("langgraph", LANGGRAPH)

    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory(dir=HERE) as tmp:
            directory = Path(tmp)
            add("plain_us", kaygraph_plain(steps))
            for sync, durability in (("NORMAL", "normal"), ("FULL", "full")):
                floor_us, floor_bytes = sqlite_floor(directory, steps, sync, sync)
                ours_us, ours_bytes = kaygraph_sqlite(directory, steps, durability, durability)
                add(f"floor_{durability}_us", floor_us)
                add(f"floor_{durability}_bytes", floor_bytes)
                add(f"ours_{durability}_us", ours_us)
                add(f"ours_{durability}_bytes", ours_bytes)
            add("big_us", kaygraph_big(directory, steps))
            if "live_threshold" in durable.__init__.__code__.co_varnames:
                add("live_us", kaygraph_live(directory, steps))
            if round_number < args.chat_rounds:
                for name, value in kaygraph_chat(directory, args.chat_steps).items():
                    add(f"chat_{name}", value)
                if python is not None:
                    for name, value in langgraph_chat(python, directory, args.chat_steps).items():
                        add(f"lgchat_{name}", value)
            if python is not None:
                peer = langgraph(python, directory, steps)
                add("langgraph_us", peer["us_per_step"])
                add("langgraph_bare_us", peer["bare_us_per_step"])
                add("langgraph_bytes", peer["bytes_per_step"])
            if reachable(REDIS_URL, 6379):
                prefix = f"kgbench:{os.getpid()}:"
                add(
                    "redis_steps_s",
                    server_steps_per_second(f"{REDIS_URL}?prefix={prefix}", steps, redis_cleanup(prefix)),
                )
            if reachable(POSTGRES_URL, 5432):
                schema = f"kgbench_{os.getpid()}"
                add(
                    "postgres_steps_s",
                    server_steps_per_second(
                        f"{POSTGRES_URL}?schema={schema}", steps, postgres_cleanup(schema)
                    ),
                )
        print(f"[bench] round {round_number + 1}/{args.rounds} done", file=sys.stderr)

    m = {name: median(values) for name, values in samples.items()}
    print(f"Persistence speed: {steps}-step two-node loop, medians of {args.rounds} rounds\n")
    print(f"{'':44} {'us/step':>9} {'bytes/step':>11}")
    rows = [
        ("KayGraph, no persistence (engine only)", m["plain_us"], None),
        ("sqlite3 INSERT floor, WAL + NORMAL", m["floor_normal_us"], m["floor_normal_bytes"]),
        ("KayGraph SQLite, durability=normal (default)", m["ours_normal_us"], m["ours_normal_bytes"]),
        ("sqlite3 INSERT floor, WAL + FULL", m["floor_full_us"], m["floor_full_bytes"]),
        ("KayGraph SQLite, durability=full", m["ours_full_us"], m["ours_full_bytes"]),
    ]
    if "langgraph_us" in m:
        rows += [
            ("LangGraph, no checkpointer", m["langgraph_bare_us"], None),
            ("LangGraph SqliteSaver (WAL + FULL, as shipped)", m["langgraph_us"], m["langgraph_bytes"]),
        ]
    for label, us, size in rows:
        print(f"{label:44} {us:9.1f} {'' if size is None else f'{size:11.0f}'}")
    print()
    print("Ratios (same run):")
    normal_ratio = m["ours_normal_us"] / m["floor_normal_us"]
    full_ratio = m["ours_full_us"] / m["floor_full_us"]
    print(f"  default durability vs NORMAL floor: {normal_ratio:.2f}x  (goal <= 2x)")
    print(f"  full durability vs FULL floor:      {full_ratio:.2f}x  (goal <= 1.5x)")
    if "langgraph_us" in m:
        speedup = m["langgraph_us"] / m["ours_full_us"]
        cost_speedup = (m["langgraph_us"] - m["langgraph_bare_us"]) / max(
            m["ours_full_us"] - m["plain_us"], 1e-9
        )
        print(f"  LangGraph / KayGraph at equal (FULL) durability: {speedup:.1f}x faster  (goal >= 3x)")
        print(f"    checkpoint cost only (minus each engine's bare loop): {cost_speedup:.1f}x")
        share = m["ours_full_bytes"] / m["langgraph_bytes"]
        print(f"  bytes/step KayGraph / LangGraph: {share:.2f}  (goal <= 0.20)")
    print(
        f"  untouched 450 KB list: {m['big_us']:.1f} us/step = {m['big_us'] / m['ours_normal_us']:.2f}x the "
        "small-state step  (goal <= 2x)"
    )
    if "live_us" in m:
        print(
            f"  node_start event before every node: {m['live_us']:.1f} us/step = "
            f"{m['live_us'] / m['ours_normal_us']:.2f}x the default (written only before slow nodes)"
        )
    if "chat_early_us" in m:
        chat = args.chat_steps
        print(
            f"\nGrowing chat, {chat} steps of one 80-character message, default settings "
            f"(medians of {args.chat_rounds} round(s)):"
        )
        ratio = m["chat_late_us"] / m["chat_early_us"]
        print(
            f"  KayGraph per step: {m['chat_early_us']:.1f} us around step 100, {m['chat_late_us']:.1f} us "
            f"over the last 100: ratio {ratio:.2f}  (goal <= 1.5); whole run {m['chat_total_s']:.2f} s"
        )
        size = m["chat_db_bytes"] / m["chat_state_bytes"]
        print(
            f"  KayGraph database: {m['chat_db_bytes'] / 1e6:.2f} MB = {size:.2f}x the final state "
            f"({m['chat_state_bytes'] / 1e3:.0f} KB)  (goal <= 3x)"
        )
        if "chat_state_at_ms" in m:
            print(
                f"  state at a step of the kept history: {m['chat_state_at_ms']:.1f} ms "
                "(worst of 3; goal <= 100 ms)"
            )
            print(
                f"  kept history ({m['chat_kept_steps']:.0f} entries): steps without state (runs show) "
                f"{m['chat_show_s'] * 1e3:.0f} ms; every state streamed {m['chat_history_s']:.2f} s, peak "
                f"memory over 300 of them {m['chat_history_peak_ratio']:.1f}x one state  (goal < 10x)"
            )
        else:
            print(f"  reading the kept history with its states (steps()): {m['chat_history_s']:.2f} s")
        if "lgchat_early_us" in m:
            lg_ratio = m["lgchat_late_us"] / m["lgchat_early_us"]
            print(
                f"  LangGraph SqliteSaver: {m['lgchat_early_us']:.1f} us around step 100, "
                f"{m['lgchat_late_us']:.1f} us at the end: ratio {lg_ratio:.2f}; database "
                f"{m['lgchat_bytes'] / 1e6:.1f} MB = "
                f"{m['lgchat_bytes'] / m['lgchat_state_bytes']:.1f}x its final state"
            )
    if "redis_steps_s" in m:
        print(f"Redis store:      {m['redis_steps_s']:8.0f} steps/s")
    if "postgres_steps_s" in m:
        print(f"PostgreSQL store: {m['postgres_steps_s']:8.0f} steps/s")


if __name__ == "__main__":
    main()
