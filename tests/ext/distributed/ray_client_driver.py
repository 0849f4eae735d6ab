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

from kaygraph.ext.distributed import ExecutorConnectionError, RayExecutor

NUMBERS = list(range(12))


def connect(address: str, attempts: int = 3) -> RayExecutor:
    """``RayExecutor(address).start()``, again when the head failed to start this client's server.

    The head's proxy gives each client a server of its own on a port from a fixed range (23000 and
    up); its check that a port is free misses one that another Ray Client on this machine holds (a
    concurrent test run), and then that client fails. The proxy's next attempt takes the next port.
    """
    for attempt in range(attempts):
        try:
            return RayExecutor(address, connect_timeout=30).start()
        except ExecutorConnectionError as exc:
            if "Starting Ray client server failed" not in str(exc) or attempt == attempts - 1:
                raise
            print(f"retrying: {exc}", file=sys.stderr)
    raise AssertionError("unreachable")


def main() -> None:
    import test_conformance  # next to this script (sys.path[0]); not at import, which pytest does too

    cloudpickle.register_pickle_by_value(test_conformance)  # the cluster cannot import test modules
    outcome: dict[str, object] = {}
    with connect(sys.argv[1]) as executor:
        for parallel in (False, True):
            shared = {"numbers": NUMBERS}
            test_conformance.build_pipeline(parallel).run(shared, executor=executor)
            outcome["parallel" if parallel else "batch"] = shared
        outcome["describe"] = executor.describe()
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
