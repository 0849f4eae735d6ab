"""Durable + distributed: each item is checkpointed as its result comes back, so when the driver
is SIGKILLed mid-batch and the run resumed in a new process, no checkpointed item runs again.

The driver is a subprocess (tests/ext/distributed/durable_driver.py) on the session's engines:
its own 2-process pool, the session's Dask scheduler, or the session's Ray joined as a driver.
Executions are counted in a side file written by the workers, tagged with the driver's mode.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kaygraph.core.exceptions import CheckpointCorruptError
from kaygraph.ext.persistence import open_store
from kaygraph.ext.persistence.history import fold_to

from .conftest import KINDS

DRIVER = Path(__file__).with_name("durable_driver.py")
ITEMS = 80


def executions(side: Path, mode: str) -> list[int]:
    lines = side.read_text().splitlines() if side.exists() else []
    return [int(fields[1]) for fields in map(str.split, lines) if len(fields) == 3 and fields[2] == mode]


def checkpointed_items(url: str, run_id: str) -> set[int]:
    """The items of node Work whose results the store holds now (none before the first checkpoint)."""
    store = open_store(url)
    try:
        if store.get_run(run_id) is None:
            return set()
        try:
            _, state, _ = fold_to(store, run_id)
        except CheckpointCorruptError:  # the run row exists, its first record not yet
            return set()
    finally:
        store.close()
    return {int(index) for index in state.items.get(("Work",), {})}


def executor_url(kind: str, request: pytest.FixtureRequest) -> str:
    if kind == "process":
        return "process://2"
    if kind == "dask":
        return str(request.getfixturevalue("dask_cluster").scheduler_address)
    request.getfixturevalue("ray_runtime")
    import ray

    return "ray+gcs://" + ray.get_runtime_context().gcs_address


def driver(url: str, run_id: str, side: Path, mode: str, executor: str) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), url, run_id, str(side), mode, executor],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its process group: the driver with the pool processes it starts
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_killed_driver_resumes_without_rerunning_finished_items(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    side = tmp_path / "side.txt"
    target = executor_url(kind, request)

    first = driver(url, "batch-1", side, "run", target)
    deadline = time.monotonic() + 90
    while len(checkpointed_items(url, "batch-1")) < 10 and first.poll() is None:
        assert time.monotonic() < deadline, "no item was checkpointed within 90 s"
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1]
    os.killpg(first.pid, signal.SIGKILL)  # the driver's machine dies: the driver and its pool processes
    first.wait(timeout=30)
    saved = checkpointed_items(url, "batch-1")
    assert 10 <= len(saved) < ITEMS  # killed mid-batch, with some items checkpointed

    second = driver(url, "batch-1", side, "resume", target)
    out, err = second.communicate(timeout=120)

    assert second.returncode == 0, err
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert result == {"status": "succeeded", "results": [index * 2 for index in range(ITEMS)]}
    rerun = executions(side, "resume")
    assert not set(rerun) & saved  # no checkpointed item ran again
    assert set(rerun) | saved == set(range(ITEMS))  # and the rest did, each once
    assert len(rerun) == len(set(rerun))
