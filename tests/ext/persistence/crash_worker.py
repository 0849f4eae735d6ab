"""A 30-node durable graph run in a subprocess, so tests can SIGKILL it anywhere and resume it.

Usage: python crash_worker.py STORE_URL RUN_ID SIDE_FILE (run|resume|plain)

Every unit of work (a node's exec, a batch item, a node of the nested graph) appends its id to
SIDE_FILE before returning; ``post`` appends the same id to ``shared["done"]``, so the checkpointed
state says exactly which completions were saved. On success the final shared store is printed as
JSON.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
import time
from typing import Any

from kaygraph import BatchNode, Graph, Node

SIDE_FILE = ""


def work(unit: str) -> None:
    time.sleep(random.uniform(0.001, 0.004))
    with open(SIDE_FILE, "a") as side:
        side.write(unit + "\n")


class Unit(Node):
    """One step of the pipeline; deterministic effect on the shared store."""

    def __init__(self, node_id: str, index: int, unit_name: str | None = None) -> None:
        super().__init__(node_id=node_id)
        self.index = index
        self.unit_name = unit_name or node_id

    def exec(self, prep_res: Any) -> Any:
        work(self.unit_name)
        return self.index * self.index

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["acc"] = (shared["acc"] * 31 + exec_res + 1) % 1_000_000_007
        shared["values"][self.unit_name] = exec_res
        shared["done"].append(self.unit_name)


class Items(BatchNode):
    """Node N10: six items, each checkpointed as it finishes."""

    def prep(self, shared: Any) -> Any:
        return list(range(6))

    def exec(self, item: Any) -> Any:
        work(f"N10:{item}")
        return item * 10

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["items"] = exec_res
        shared["done"].append("N10")


def build() -> Graph:
    nodes: list[Any] = []
    for index in range(30):
        name = f"N{index:02d}"
        if index == 10:
            nodes.append(Items(node_id=name))
        elif index == 20:
            inner = [Unit(f"S{k}", 100 + k, f"N20/S{k}") for k in range(3)]
            inner[0] >> inner[1] >> inner[2]
            nodes.append(Graph(inner[0], name="sub", node_id=name))
        else:
            nodes.append(Unit(name, index))
    for left, right in itertools.pairwise(nodes):
        left >> right
    return Graph(nodes[0], name="crash-pipeline")


def initial_state() -> dict[str, Any]:
    return {"acc": 1, "values": {}, "done": [], "items": []}


def main() -> None:
    global SIDE_FILE
    url, run_id, SIDE_FILE, mode = sys.argv[1:5]
    graph = build()
    if mode == "plain":
        shared = initial_state()
        graph.run(shared)
    else:
        from kaygraph.ext.persistence import durable

        runner = durable(graph, url)
        result = runner.run(initial_state(), run_id=run_id) if mode == "run" else runner.resume(run_id)
        shared = result.shared
    print(json.dumps(shared, sort_keys=True))


if __name__ == "__main__":
    main()
