"""What goes wrong, on real engines: a worker SIGKILLed mid-batch, an item that keeps failing,
bad input (an unpicklable node, an unreachable cluster, impossible resources, a missing engine).

Executions are counted in a side file that every item appends to from its worker process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kaygraph import BatchNode, Graph, Node
from kaygraph.ext.distributed import (
    DaskExecutor,
    ExecutorConnectionError,
    RayExecutor,
    ResourceUnavailableError,
    UnpicklableError,
)
from kaygraph.ext.distributed.abc import ClusterExecutor

from .conftest import kind_of

SIDE = {"path": ""}  # set per test; travels to the workers with the nodes (pickled by value)


def record(*fields: Any) -> None:
    with open(SIDE["path"], "a") as side:
        side.write(" ".join(map(str, fields)) + "\n")


def records(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


class Slow(BatchNode):
    """Each item records ``done <index> <pid>`` after a little work."""

    def prep(self, shared: dict[str, Any]) -> range:
        return range(shared["count"])

    def exec(self, index: int) -> int:
        time.sleep(0.003)
        record("done", index, os.getpid())
        return index * 3

    def post(self, shared: dict[str, Any], prep_res: Any, results: list[int]) -> None:
        shared["results"] = results


@pytest.fixture
def side(tmp_path: Path) -> Path:
    path = tmp_path / "executions.txt"
    path.touch()
    SIDE["path"] = str(path)
    return path


def test_a_worker_killed_mid_batch_loses_no_item(executor: ClusterExecutor, side: Path) -> None:
    shared: dict[str, Any] = {"count": 1000}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Graph(Slow(), name="slow").run(shared, executor=executor)
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 60
    while len(records(side)) < 250 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = int(records(side)[-1][2])
    assert victim != os.getpid()
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=120)

    assert not runner.is_alive() and not errors
    assert shared["results"] == [index * 3 for index in range(1000)]
    executed = [int(fields[1]) for fields in records(side)]
    assert set(executed) == set(range(1000))  # every item completed...
    pids = {int(fields[2]) for fields in records(side)}
    assert victim in pids and len(pids) >= 2  # ...on the workers, the killed one included
    # Only what ran in the killed task (and what was in flight with it) ran twice.
    assert len(executed) - 1000 <= executor.max_in_flight * executor.chunk_size(1000)


class Fragile(BatchNode):
    """Item ``bad`` always fails; ``exec_fallback`` says what happens then."""

    bad = 5
    fallback = "raise"

    def prep(self, shared: dict[str, Any]) -> range:
        return range(shared["count"])

    def exec(self, index: int) -> int:
        record("start", index, self.cur_retry)
        if index == self.bad:
            raise ValueError(f"item {index} is broken")
        time.sleep(0.05)
        return index

    def exec_fallback(self, index: int, exc: Exception) -> Any:
        record("fallback", index)
        if self.fallback == "raise":
            raise exc
        return -1

    def post(self, shared: dict[str, Any], prep_res: Any, results: list[int]) -> None:
        shared["results"] = results


def test_an_application_error_is_retried_then_falls_back(executor: ClusterExecutor, side: Path) -> None:
    node = Fragile(max_retries=3, wait=0.01)
    node.fallback = "value"
    shared: dict[str, Any] = {"count": 12}

    Graph(node, name="fragile").run(shared, executor=executor)

    assert shared["results"] == [-1 if index == 5 else index for index in range(12)]
    attempts = [int(fields[2]) for fields in records(side) if fields[:2] == ["start", "5"]]
    assert attempts == [0, 1, 2]  # max_retries attempts, then the fallback, once
    assert [fields for fields in records(side) if fields[0] == "fallback"] == [["fallback", "5"]]


def test_a_final_error_names_node_and_item_and_stops_the_batch(executor: ClusterExecutor, side: Path) -> None:
    node = Fragile(node_id="fragile-node")
    node.chunk_size = 1
    shared: dict[str, Any] = {"count": 200}

    with pytest.raises(ValueError, match="item 5 is broken") as caught:
        Graph(node, name="fragile").run(shared, executor=executor)

    notes = "\n".join(caught.value.__notes__)
    assert "item 5 of node 'fragile-node' raised on worker" in notes
    assert "node 'fragile-node' (Fragile) of graph 'fragile' failed" in notes
    time.sleep(0.3)  # what was in flight when the error came back has written its start by now
    started = {int(fields[1]) for fields in records(side) if fields[0] == "start"}
    time.sleep(0.5)
    assert {int(fields[1]) for fields in records(side) if fields[0] == "start"} == started  # none after
    assert len(started) <= 5 + 2 * executor.max_in_flight  # in-flight ones, not the 200
    assert "results" not in shared


class Sleepy(BatchNode):
    """Item 0 fails at once; the others take long, noting each tenth of a second they are alive."""

    chunk_size = 1

    def prep(self, shared: dict[str, Any]) -> range:
        return range(4)

    def exec(self, index: int) -> int:
        if index == 0:
            time.sleep(0.3)  # let the others start
            raise RuntimeError("item 0 failed")
        for _ in range(100):
            record("alive", index)
            time.sleep(0.1)
        return index


def test_in_flight_items_are_cancelled_when_an_item_fails(executor: ClusterExecutor, side: Path) -> None:
    started = time.monotonic()

    with pytest.raises(RuntimeError, match="item 0 failed"):
        Graph(Sleepy(), name="sleepy").run({}, executor=executor)

    assert time.monotonic() - started < 9  # the caller does not wait for the 10 s items
    if kind_of(executor) == "ray":  # only Ray stops running tasks (ray.cancel): they go quiet
        # Before the items' own 10 s end (uncancelled, they would record 100 times each, which
        # the last line catches), with room for ray.cancel on a loaded machine.
        quiet_by = time.monotonic() + 8.5
        before = len(records(side))
        while time.monotonic() < quiet_by:
            time.sleep(1.0)
            now = len(records(side))
            if now == before:
                break
            before = now
        else:
            raise AssertionError("the running items were not stopped")
        assert max(sum(1 for fields in records(side) if fields[1] == str(i)) for i in (1, 2, 3)) < 100


# -- bad input ----------------------------------------------------------------------------------


class Summarize(Node):
    remote = True

    def __init__(self) -> None:
        super().__init__()
        self.client = threading.Lock()

    def exec(self, _: Any) -> str:
        record("ran")
        return "summary"


def test_an_unpicklable_node_fails_the_run_before_anything_runs(
    executor: ClusterExecutor, side: Path
) -> None:
    with pytest.raises(UnpicklableError, match=r"Summarize\.client is a _thread\.lock") as caught:
        Graph(Summarize(), name="g").run({}, executor=executor)

    assert caught.value.node_id == "Summarize"
    assert records(side) == []


class NeedsGPU(Node):
    remote = True
    resources = {"GPU": 1}

    def exec(self, _: Any) -> str:
        return "trained"


def test_resources_no_worker_has_are_an_error_not_a_hang(executor: ClusterExecutor) -> None:
    started = time.monotonic()

    wanted = re.escape("node 'NeedsGPU' asks for resources {'GPU': 1}")
    with pytest.raises(ResourceUnavailableError, match=wanted):
        Graph(NeedsGPU(), name="g").run({}, executor=executor)

    assert time.monotonic() - started < 10


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("kind", "scheme"), [(DaskExecutor, "tcp"), (RayExecutor, "ray")], ids=["dask", "ray"]
)
def test_an_unreachable_cluster_is_named_within_the_timeout(kind: Any, scheme: str) -> None:
    address = f"{scheme}://127.0.0.1:{_free_port()}"
    started = time.monotonic()

    wanted = f"cannot reach the .* at {address} within 2 s"
    with pytest.raises(ExecutorConnectionError, match=wanted) as caught:
        kind(address, connect_timeout=2).start()

    assert caught.value.address == address
    assert time.monotonic() - started < 5


def test_a_scheduler_that_never_answers_times_out_with_its_address() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()

        with pytest.raises(ExecutorConnectionError, match=f"Dask scheduler at {address} within 2 s"):
            DaskExecutor(address, connect_timeout=2).start()

    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("module", "name"), [("ray", "RayExecutor"), ("distributed", "DaskExecutor")], ids=["ray", "dask"]
)
def test_a_missing_engine_gives_the_install_hint(module: str, name: str) -> None:
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from kaygraph.ext import distributed\n"
        f"try:\n    distributed.{name}\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    package = "dask[distributed]" if module == "distributed" else "ray"
    assert result.stdout.startswith(f"MissingExtraError {name} needs the '{package}'")
    assert "pip install 'kaygraph[distributed]'" in result.stdout


@pytest.mark.parametrize("name", ["DaskExecutor", "RayExecutor", "ProcessExecutor"])
def test_a_missing_cloudpickle_gives_the_install_hint(name: str) -> None:
    code = (
        "import sys; sys.modules['cloudpickle'] = None\n"
        "from kaygraph.ext import distributed\n"
        f"try:\n    distributed.{name}\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingExtraError "), result.stdout
    assert "needs the 'cloudpickle' package" in result.stdout
    assert "pip install 'kaygraph[distributed]'" in result.stdout
