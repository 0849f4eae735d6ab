"""LangGraph peer of the growing-chat loop of bench/persistence_speed.py; runs in bench/.venvs/langgraph.

    python _persistence_langgraph_chat.py DIRECTORY STEPS

The idiomatic LangGraph chat: a ``messages`` channel with an ``operator.add`` reducer, one node
returning the message it appends, ``SqliteSaver`` as shipped. Prints one JSON line: per-step
microseconds around step 100 and at the end, and the database size against the final state's.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import sqlite3
import statistics
import sys
import time
from typing import Annotated, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    messages: Annotated[list, operator.add]


def message(index: int) -> dict[str, str]:
    """The same 80-character message the KayGraph loop appends."""
    role = "user" if index % 2 == 0 else "assistant"
    return {"role": role, "content": f"message {index:05d}: " + "lorem ipsum dolor sit amet " * 3}


def main() -> None:
    directory, steps = sys.argv[1], int(sys.argv[2])
    stamps: list[float] = []

    def chat(state: State) -> dict[str, list[dict[str, str]]]:
        stamps.append(time.perf_counter())
        return {"messages": [message(len(state["messages"]))]}

    graph = StateGraph(State)
    graph.add_node("chat", chat)
    graph.add_edge(START, "chat")
    graph.add_conditional_edges("chat", lambda state: "chat" if len(state["messages"]) < steps else END)
    path = os.path.join(directory, "langgraph-chat.db")
    connection = sqlite3.connect(path, check_same_thread=False)
    app = graph.compile(checkpointer=SqliteSaver(connection))
    config = {"recursion_limit": steps + 10, "configurable": {"thread_id": "chat"}}
    final = app.invoke({"messages": []}, config)
    assert len(final["messages"]) == steps
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    gaps = [(b - a) * 1e6 for a, b in itertools.pairwise(stamps)]
    print(
        json.dumps(
            {
                "early_us": statistics.median(gaps[50:150]),
                "late_us": statistics.median(gaps[-100:]),
                "bytes": os.path.getsize(path),
                "state_bytes": len(json.dumps(final["messages"], separators=(",", ":"))),
            }
        )
    )


if __name__ == "__main__":
    main()
