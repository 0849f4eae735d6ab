"""Writer processes for the concurrency tests.

Usage: python concurrency_worker.py STORE_URL RUN_ID STEPS loop GO_FILE
       python concurrency_worker.py STORE_URL RUN_ID STEPS hold READY_FILE RELEASE_FILE
       python concurrency_worker.py STORE_URL RUN_ID STEPS claim

``loop`` waits for GO_FILE, then runs a STEPS-step durable loop. ``hold`` starts run RUN_ID and
blocks inside its first node until RELEASE_FILE exists. ``claim`` tries to write RUN_ID too and
exits with 3 when it gets ``RunLockedError`` from both ``run`` and ``resume``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from kaygraph import Graph, Node
from kaygraph.core.exceptions import RunLockedError
from kaygraph.ext.persistence import durable


def wait_for(path: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.002)


class Count(Node):
    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["n"] += 1
        return "again" if shared["n"] < shared["steps"] else "done"


class Hold(Node):
    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        open(sys.argv[5], "w").close()
        wait_for(sys.argv[6])


def main() -> None:
    url, run_id, steps, mode = sys.argv[1:5]
    if mode == "loop":
        count = Count()
        count - "again" >> count
        count - "done" >> Node(node_id="end")
        runner = durable(Graph(count, name="loop"), url)
        wait_for(sys.argv[5])
        result = runner.run({"n": 0, "steps": int(steps)}, run_id=run_id)
        assert result.shared["n"] == int(steps)
    elif mode == "hold":
        hold = Hold()
        hold >> Node(node_id="after")
        durable(Graph(hold, name="held"), url).run({}, run_id=run_id)
    else:
        runner = durable(Graph(Node(node_id="other"), name="held"), url)
        for attempt in (lambda: runner.run({}, run_id=run_id), lambda: runner.resume(run_id)):
            try:
                attempt()
            except RunLockedError:
                continue
            raise SystemExit(1)
        raise SystemExit(3)


if __name__ == "__main__":
    main()
