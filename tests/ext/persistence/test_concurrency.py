"""Several processes writing to one SQLite file / PostgreSQL database / Redis at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kaygraph.ext.persistence import open_store

WORKER = Path(__file__).with_name("concurrency_worker.py")
SHARED_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
]
STEPS = 200


def spawn(env: dict[str, str], *args: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("writers", [2, 8])
@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_concurrent_writers_lose_nothing(
    backend: str, writers: int, new_store_url: Any, worker_env: dict[str, str], tmp_path: Path
) -> None:
    url = new_store_url(backend)
    open_store(url).close()  # create the schema once, as a deployment would
    go = tmp_path / "go"
    processes = [spawn(worker_env, url, f"writer-{index}", STEPS, "loop", go) for index in range(writers)]
    go.touch()
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0 and err == "", err  # no "database is locked", no warning
    store = open_store(url)
    try:
        runs = {info.run_id: info for info in store.list_runs()}
        assert sorted(runs) == sorted(f"writer-{index}" for index in range(writers))
        for run_id, info in runs.items():
            assert (info.status, info.steps) == ("succeeded", STEPS + 1)
            seqs = [seq for seq, _ in store.load(run_id)]
            assert seqs == list(range(len(seqs)))  # nothing lost, nothing interleaved
        from kaygraph.ext.persistence import steps

        counts = [entry.state["n"] for entry in steps(store, "writer-0") if entry.kind == "step"]
        assert counts == [*range(1, STEPS + 1), STEPS]  # the last entry is the "end" node
    finally:
        store.close()


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_second_writer_of_the_same_run_id_is_refused(
    backend: str, new_store_url: Any, worker_env: dict[str, str], tmp_path: Path
) -> None:
    url = new_store_url(backend)
    ready, release = tmp_path / "ready", tmp_path / "release"
    holder = spawn(worker_env, url, "contested", 0, "hold", ready, release)
    try:
        while not ready.exists():
            assert holder.poll() is None, holder.communicate()[1]
            time.sleep(0.005)
        claimer = spawn(worker_env, url, "contested", 0, "claim")
        _, err = claimer.communicate(timeout=60)
        assert claimer.returncode == 3, err
    finally:
        release.touch()
        _, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err
    store = open_store(url)
    try:
        info = store.get_run("contested")
        assert info is not None and info.status == "succeeded" and info.steps == 2
        from kaygraph.ext.persistence import steps

        assert [entry.node_id for entry in steps(store, "contested")] == [None, "Hold", "after", None]
    finally:
        store.close()
