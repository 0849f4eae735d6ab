"""SIGKILL a durable 30-node run at random points and resume it: nothing lost, nothing redone.

What counts as "redone": every unit of work writes its id to a side file when it executes; its
completion is *checkpointed* once the store's latest state lists it (``shared["done"]``, or the
batch items recorded for node N10). A unit that executed but was killed before its checkpoint
committed legitimately runs again. So after each kill we read the store, and the executions that
follow (by the resumed process) must not include any unit checkpointed at that moment. The final
shared store must equal an uninterrupted run's, and re-executions never exceed the kills.

The memory store is not crash-tested: it lives in the killed process by design.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kaygraph.ext.persistence import open_store
from kaygraph.ext.persistence.history import fold_to
from kaygraph.ext.persistence.serialization import JSONSerializer

WORKER = Path(__file__).with_name("crash_worker.py")
#: Every unit of work of one run: 28 plain nodes, the 6 items of batch node N10, the 3 nodes of N20.
ALL_UNITS = (
    [f"N{index:02d}" for index in range(30) if index not in (10, 20)]
    + [f"N10:{item}" for item in range(6)]
    + [f"N20/S{k}" for k in range(3)]
)
CRASH_PLAN = [
    pytest.param("sqlite", 3, id="sqlite"),
    pytest.param("redis", 2, id="redis", marks=pytest.mark.service("redis")),
    pytest.param("postgres", 2, id="postgres", marks=pytest.mark.service("postgres")),
]
KILLS_PER_SCENARIO = 3  # 3*3 + 2*3 + 2*3 = 21 kills across the suite


def worker(url: str, run_id: str, side: Path, mode: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, run_id, str(side), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def lines(side: Path) -> list[str]:
    return side.read_text().split() if side.exists() else []


def checkpointed_units(url: str, run_id: str) -> set[str]:
    """The units whose completion the store holds right now."""
    store = open_store(url)
    try:
        if store.get_run(run_id) is None:
            return set()
        _, state, _ = fold_to(store, run_id)
    finally:
        store.close()
    decode = JSONSerializer().decode
    done = set(decode(state.state["done"]))
    items = state.items.get(("N10",), {})
    done |= {f"N10:{index}" for index in items}
    if "N10" in done:
        done |= {f"N10:{index}" for index in range(6)}
    return done


@pytest.fixture
def reference(tmp_path: Path, worker_env: dict[str, str]) -> dict[str, Any]:
    """The final shared store of an uninterrupted run (no persistence at all)."""
    side = tmp_path / "reference.txt"
    process = worker("memory://", "plain", side, "plain", worker_env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert sorted(lines(side)) == sorted(ALL_UNITS)
    return dict(json.loads(out))


def run_exists(url: str, run_id: str) -> bool:
    store = open_store(url)
    try:
        return store.get_run(run_id) is not None
    finally:
        store.close()


@pytest.mark.parametrize(("backend", "scenarios"), CRASH_PLAN)
def test_sigkill_at_random_points_then_resume(
    backend: str,
    scenarios: int,
    reference: dict[str, Any],
    new_store_url: Any,
    worker_env: dict[str, str],
    tmp_path: Path,
    seed: int,
) -> None:
    url = new_store_url(backend)
    rng = random.Random(seed)  # KAYGRAPH_TEST_SEED=<seed> repeats the kill points
    kills = 0
    for scenario in range(scenarios):
        run_id = f"crash-{scenario}"
        side = tmp_path / f"side-{scenario}.txt"
        windows: list[tuple[set[str], int]] = []  # (checkpointed units, executions so far) per kill
        finished = False
        for _ in range(KILLS_PER_SCENARIO):
            already = len(lines(side))
            target = already + rng.randint(1, max(1, (len(ALL_UNITS) - already) // 2))
            mode = "resume" if run_exists(url, run_id) else "run"
            process = worker(url, run_id, side, mode, worker_env)
            while len(lines(side)) < target and process.poll() is None:
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.004))
            process.send_signal(signal.SIGKILL)
            out, err = process.communicate()
            if process.returncode != -signal.SIGKILL:
                assert process.returncode == 0, f"seed {seed}: {err}"
                finished = True  # the run ended before the kill landed
                break
            kills += 1
            windows.append((checkpointed_units(url, run_id), len(lines(side))))
        if not finished:
            mode = "resume" if run_exists(url, run_id) else "run"
            process = worker(url, run_id, side, mode, worker_env)
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, f"seed {seed}: {err}"
        assert json.loads(out) == reference, f"seed {seed}"
        executed = lines(side)
        for saved, position in windows:
            rerun = saved & set(executed[position:])
            assert not rerun, f"seed {seed}: checkpointed units ran again after a kill: {sorted(rerun)}"
        assert sorted(set(executed)) == sorted(ALL_UNITS), f"seed {seed}"
        assert len(executed) - len(ALL_UNITS) <= len(windows), f"seed {seed}: {executed}"
    print(f"{backend}: {kills} kills, seed {seed}")
    assert kills >= scenarios * 2, f"seed {seed}: only {kills} kills landed"
