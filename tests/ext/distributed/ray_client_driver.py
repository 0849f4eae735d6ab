"""The conformance pipeline on ``RayExecutor(ADDRESS)`` through Ray Client, in a process of its own:
the test process already holds the session's local Ray, and Ray allows one per process.

Usage: python ray_client_driver.py ray://127.0.0.1:PORT

Runs the pipeline with a batch and with a parallel batch node (both with a remote node in a nested
graph) and prints, as JSON on its last line, the shared stores and the executor's ``describe()``.
"""

from __future__ import annotations

import json
import sys

import cloudpickle

from kaygraph.ext.distributed import RayExecutor

NUMBERS = list(range(12))


def main() -> None:
    import test_conformance  # next to this script (sys.path[0]); not at import, which pytest does too

    cloudpickle.register_pickle_by_value(test_conformance)  # the cluster cannot import test modules
    outcome: dict[str, object] = {}
    with RayExecutor(sys.argv[1], connect_timeout=30) as executor:
        for parallel in (False, True):
            shared = {"numbers": NUMBERS}
            test_conformance.build_pipeline(parallel).run(shared, executor=executor)
            outcome["parallel" if parallel else "batch"] = shared
        outcome["describe"] = executor.describe()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
