"""A durable batch run on an executor, in a process of its own so a test can SIGKILL the driver.

Usage: python durable_driver.py STORE_URL RUN_ID SIDE_FILE (run|resume) EXECUTOR_URL

Each of the 80 items appends ``exec <index> <mode>`` to SIDE_FILE on the worker that runs it; the
mode tells the executions of the first driver from those of the resumed one. On success the
results are printed as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from kaygraph import BatchNode, Graph
from kaygraph.ext.distributed import open_executor
from kaygraph.ext.persistence import durable

ITEMS = 80


class Work(BatchNode):
    def __init__(self, side: str, mode: str) -> None:
        super().__init__()
        self.side = side
        self.mode = mode

    def prep(self, shared: dict[str, Any]) -> range:
        return range(shared["items"])

    def exec(self, index: int) -> int:
        time.sleep(0.05)
        with open(self.side, "a") as side:
            side.write(f"exec {index} {self.mode}\n")
        return index * 2

    def post(self, shared: dict[str, Any], prep_res: Any, results: list[int]) -> None:
        shared["results"] = results


def main() -> None:
    store_url, run_id, side, mode, executor_url = sys.argv[1:6]
    graph = Graph(Work(side, mode), name="durable-batch")
    with open_executor(executor_url) as executor:  # type: ignore[union-attr]
        runner = durable(graph, store_url)
        if mode == "resume":
            result = runner.resume(run_id, executor=executor)
        else:
            result = runner.run({"items": ITEMS}, run_id=run_id, executor=executor)
    print(json.dumps({"status": result.status, "results": result.shared["results"]}))


if __name__ == "__main__":
    main()
