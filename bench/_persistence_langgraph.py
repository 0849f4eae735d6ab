"""LangGraph peer of bench/persistence_speed.py; runs in bench/.venvs/langgraph.

    python _persistence_langgraph.py DIRECTORY STEPS

Prints one JSON line: microseconds per step with SqliteSaver (as shipped: WAL, SQLite's default
synchronous=FULL), without a checkpointer, and the database bytes per step.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from typing import TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    count: int
    note: str


def build(steps: int) -> StateGraph:
    graph = StateGraph(State)
    graph.add_node("a", lambda state: {"count": state["count"] + 1})
    graph.add_node("b", lambda state: {"count": state["count"] + 1})
    graph.add_edge(START, "a")
    graph.add_edge("a", "b")
    graph.add_conditional_edges("b", lambda state: "a" if state["count"] < steps else END)
    return graph


def main() -> None:
    directory, steps = sys.argv[1], int(sys.argv[2])
    config = {"recursion_limit": steps + 10, "configurable": {"thread_id": "bench"}}
    initial = {"count": 0, "note": "hello world"}

    plain = build(steps).compile()
    started = time.perf_counter()
    assert plain.invoke(initial, config)["count"] == steps
    bare = (time.perf_counter() - started) / steps * 1e6

    path = os.path.join(directory, "langgraph.db")
    connection = sqlite3.connect(path, check_same_thread=False)
    app = build(steps).compile(checkpointer=SqliteSaver(connection))
    started = time.perf_counter()
    assert app.invoke(initial, config)["count"] == steps
    durable = (time.perf_counter() - started) / steps * 1e6
    synchronous = connection.execute("PRAGMA synchronous").fetchone()[0]
    journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    size = os.path.getsize(path)
    print(
        json.dumps(
            {
                "us_per_step": durable,
                "bare_us_per_step": bare,
                "bytes_per_step": size / steps,
                "synchronous": synchronous,
                "journal_mode": journal,
            }
        )
    )


if __name__ == "__main__":
    main()
