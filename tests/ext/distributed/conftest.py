"""Real engines on 127.0.0.1, started once per test session: a Dask LocalCluster with 2 worker
processes, a local Ray with 2 CPUs (small object store, no dashboard), and a 2-process pool.

``executor`` is parametrized over the three, so a behaviour test is written once; tests that
need their own executor (other options, a worker they may break) use ``make_executor(kind)``,
which attaches to the same running engines instead of starting new ones.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
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
