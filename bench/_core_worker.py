"""Runs one core workload on KayGraph or PocketFlow and prints microseconds per step (JSON).

Started by bench/core_speed.py with the interpreter of each library's own venv.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import warnings

LIB, WORKLOAD, REPEATS = sys.argv[1], sys.argv[2], int(sys.argv[3])
MODE = sys.argv[4] if len(sys.argv) > 4 else "bare"  # bare | listener | seams
LISTENER = MODE == "listener"

if LIB == "kaygraph":
    from kaygraph import Graph, Node
else:
    from pocketflow import Flow as Graph
    from pocketflow import Node

warnings.simplefilter("ignore")
LOOP_STEPS = 10_000
CHAIN_LENGTH = 100
CHAIN_RUNS = 100


class Count(Node):
    """Adds one to shared["count"]: the same work per step for both libraries."""

    def prep(self, shared):
        return shared["count"]

    def exec(self, count):
        return count + 1

    def post(self, shared, prep_res, exec_res):
        shared["count"] = exec_res


class Ping(Count):
    def post(self, shared, prep_res, exec_res):
        super().post(shared, prep_res, exec_res)
        return "pong" if exec_res < LOOP_STEPS else "done"


class Pong(Count):
    def post(self, shared, prep_res, exec_res):
        super().post(shared, prep_res, exec_res)
        return "ping"


Link = Count


def loop_graph():
    ping, pong = Ping(), Pong()
    ping - "pong" >> pong
    pong - "ping" >> ping
    return Graph(start=ping)


def chain_graph():
    nodes = [Link() for _ in range(CHAIN_LENGTH)]
    for left, right in itertools.pairwise(nodes):
        left >> right
    return Graph(start=nodes[0])


def run_kwargs():
    if MODE == "seams":  # a cancel token and the default executor attached, no listener
        from kaygraph import CancelToken
        from kaygraph.core.executor import InlineExecutor

        return {"cancel": CancelToken(), "executor": InlineExecutor()}
    if not LISTENER:
        return {}
    from kaygraph import RunListener

    class Counting(RunListener):
        steps = 0

        def on_node_end(self, **kwargs):
            Counting.steps += 1

    return {"listeners": [Counting()]}


def measure() -> float:
    kwargs = run_kwargs()
    if WORKLOAD == "loop":
        graph = loop_graph()
        shared = {"count": 0}
        started = time.perf_counter()
        graph.run(shared, **kwargs)
        elapsed = time.perf_counter() - started
        assert shared["count"] >= LOOP_STEPS, shared
        return elapsed / shared["count"] * 1e6
    graph = chain_graph()
    started = time.perf_counter()
    for _ in range(CHAIN_RUNS):
        shared = {"count": 0}
        graph.run(shared, **kwargs)
        assert shared["count"] == CHAIN_LENGTH
    elapsed = time.perf_counter() - started
    return elapsed / (CHAIN_RUNS * CHAIN_LENGTH) * 1e6


measure()  # warm-up
print(json.dumps([measure() for _ in range(REPEATS)]))
