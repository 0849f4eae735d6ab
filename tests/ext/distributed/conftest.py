"""Real engines on 127.0.0.1, started once per test session: a Dask LocalCluster with 2 worker
processes, a local Ray with 2 CPUs (small object store, no dashboard), and a 2-process pool.
``ray_head`` starts, when a test asks for it, a separate Ray head with a Ray Client server (``ray
start --head``) for the ``ray://`` tests, which connect from processes of their own.

``executor`` is parametrized over the three, so a behaviour test is written once; tests that
need their own executor (other options, a worker they may break) use ``make_executor(kind)``,
which attaches to the same running engines instead of starting new ones.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cloudpickle
import pytest

from kaygraph.ext.distributed import DaskExecutor, ProcessExecutor, RayExecutor
from kaygraph.ext.distributed.abc import ClusterExecutor

KINDS = ("process", "dask", "ray")
WORKERS = 2
RAY_OBJECT_STORE = 96 * 1024 * 1024


@pytest.fixture(autouse=True, scope="module")
def _test_classes_by_value(request: pytest.FixtureRequest) -> Iterator[None]:
    """Workers cannot import test modules: ship their nodes and functions by value."""
    module = sys.modules.get(request.module.__name__)
    if module is None:
        yield
        return
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=WORKERS,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        silence_logs=logging.ERROR,
    )
    yield cluster
    cluster.close()


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[RayExecutor]:
    executor = RayExecutor(workers=WORKERS, object_store_memory=RAY_OBJECT_STORE).start()
    yield executor
    executor.close()  # it started Ray, so this shuts Ray down


@dataclass(frozen=True)
class RayHead:
    """A ``ray start --head`` of the test session: its Ray Client address and the environment
    (token authentication, with this head's token) a client process needs to join it."""

    address: str
    env: dict[str, str] = field(repr=False)
    log: str


#: Ports ``ray start`` would otherwise take at fixed numbers (6379, 10001, 8265, 52365...), where
#: another Ray on this machine may already listen; each gets a free one.
_RAY_HEAD_PORTS = (
    "port",
    "ray-client-server-port",
    "dashboard-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "node-manager-port",
    "object-manager-port",
)
RAY_HEAD_START_TIMEOUT = 120.0


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A Ray head with a client server on 127.0.0.1, apart from the session's local Ray.

    Its own temp dir (so its session files and ``ray_current_cluster`` are not /tmp/ray's, which
    the local Ray and other Rays on this machine use), free ports, token authentication with a
    token of its own. ``ray start --block`` in a process group of its own: SIGTERM makes it stop
    every Ray process it started; whatever is left of the group is killed (``ray stop`` would stop
    every Ray on the machine).
    """
    temp_dir = tempfile.mkdtemp(prefix="kgray-", dir="/tmp")  # short: Ray's socket paths must fit
    ports = dict(zip(_RAY_HEAD_PORTS, _free_ports(len(_RAY_HEAD_PORTS)), strict=True))
    env = {
        **{key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"},
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray replaces --node-ip-address=127.0.0.1 by the machine's routable address unless
        # multi-node clusters are off (what Ray does on macOS and Windows): then it stays loopback.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    command = [
        sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
        "--node-ip-address=127.0.0.1", f"--num-cpus={WORKERS}", f"--object-store-memory={RAY_OBJECT_STORE}",
        "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}",
        *(f"--{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    log = os.path.join(temp_dir, "head.log")
    with open(log, "wb") as out:
        head = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + RAY_HEAD_START_TIMEOUT
        while not _listening(ports["ray-client-server-port"]):
            if head.poll() is not None or time.monotonic() > deadline:
                with open(log, encoding="utf-8", errors="replace") as text:
                    tail = text.read()[-3000:]
                pytest.fail(f"ray start --head did not come up (exit {head.returncode}):\n{tail}")
            time.sleep(0.2)
        yield RayHead(f"ray://127.0.0.1:{ports['ray-client-server-port']}", env, log)
    finally:
        head.terminate()
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _build(kind: str, request: pytest.FixtureRequest, options: dict[str, Any]) -> ClusterExecutor:
    if kind == "process":
        return ProcessExecutor(WORKERS, **options).start()
    if kind == "dask":
        cluster = request.getfixturevalue("dask_cluster")
        return DaskExecutor(cluster.scheduler_address, **options).start()
    request.getfixturevalue("ray_runtime")
    return RayExecutor(**options).start()  # reuses the session's Ray, leaves it running on close


@pytest.fixture(scope="session", params=KINDS)
def executor(request: pytest.FixtureRequest) -> Iterator[ClusterExecutor]:
    """One long-lived executor per engine, shared by the conformance tests."""
    ex = _build(request.param, request, {})
    yield ex
    ex.close()


@pytest.fixture
def make_executor(request: pytest.FixtureRequest) -> Iterator[Callable[..., ClusterExecutor]]:
    """``make_executor(kind, **options)``: a new executor on the session's engines, closed after."""
    made: list[ClusterExecutor] = []

    def make(kind: str, **options: Any) -> ClusterExecutor:
        ex = _build(kind, request, options)
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.close()


def kind_of(executor: ClusterExecutor) -> str:
    return executor.describe()["executor"]
