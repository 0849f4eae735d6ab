"""Graphs the UI tests serve: a short pipeline with a branch and a loop, and a slow one to cancel."""

from __future__ import annotations

import threading
import time
from typing import Any

from kaygraph import Graph, Node

#: Gates a ``Wait`` node blocks on, by name (the test process owns them).
GATES: dict[str, threading.Event] = {}


class Load(Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["docs"] = ["a", "b", "c"]
        shared.setdefault("rounds", 0)
        return "default"


class Think(Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["rounds"] += 1
        shared["api_key"] = "sk-very-secret"
        return "again" if shared["rounds"] < shared.get("loops", 2) else "done"


class Answer(Node):
    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["answer"] = f"{len(shared['docs'])} docs, {shared['rounds']} rounds"
        shared.pop("docs")


class Wait(Node):
    """Blocks until its gate opens (or ``shared["sleep"]`` seconds pass), one tick at a time."""

    def exec(self, prep_res: Any) -> None:
        return None

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        gate = GATES.get(shared.get("gate", ""))
        deadline = time.monotonic() + shared.get("sleep", 0.0)
        while time.monotonic() < deadline and not (gate and gate.is_set()):
            time.sleep(0.02)
        shared["waited"] = shared.get("waited", 0) + 1
        return "again" if shared["waited"] < shared.get("waits", 1) else "done"


def pipeline() -> Graph:
    """load >> think (loops back on "again") >> answer."""
    load, think, answer = Load(), Think(), Answer()
    load >> think
    think - "again" >> think
    think - "done" >> answer
    return Graph(start=load, name="pipeline")


def nested() -> Graph:
    """load >> fetch (a one-node subgraph: its inner step is recorded before its own) >> answer."""
    load, answer = Load(), Answer()
    fetch = Graph(start=Load(node_id="reload"), name="fetch", node_id="fetch")
    load >> fetch >> answer
    return Graph(start=load, name="nested")


def slow() -> Graph:
    """wait (loops ``waits`` times) >> answer: long enough to watch live and to cancel."""
    wait, done = Wait(), Load()
    wait - "again" >> wait
    wait - "done" >> done
    return Graph(start=wait, name="slow")
