"""The drivers on the real clock: run() on threads, run_async() on asyncio, SIGTERM in a real
process (running fires are handed back and resume), overlap with a slow graph."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from kaygraph.ext.scheduler import Scheduler, every


def memory_scheduler() -> Scheduler:
    return Scheduler(f"memory://{uuid.uuid4().hex}", runs=f"memory://{uuid.uuid4().hex}", poll_interval=1)


def background(scheduler: Scheduler) -> threading.Thread:
    thread = threading.Thread(target=scheduler.run, kwargs={"handle_signals": False})
    thread.start()
    return thread


def test_run_fires_on_time_until_stopped(graphs) -> None:
    scheduler = memory_scheduler()
    scheduler.add("tick", graphs.ref("counting"), every(seconds=1), overlap="allow")
    thread = background(scheduler)
    time.sleep(3.2)
    scheduler.stop()
    thread.join(10)
    assert not thread.is_alive()
    fires = [f for f in scheduler.fires("tick") if f.status == "succeeded"]
    assert len(fires) >= 2
    assert sorted(graphs.executed()) == sorted(f.fire_id for f in fires)
    assert scheduler.observer.lags and max(scheduler.observer.lags) < 0.5  # woke at the fire times


def test_a_driver_opens_the_runs_store_before_the_first_fire(graphs) -> None:
    scheduler = memory_scheduler()
    scheduler.add("later", graphs.ref("counting"), every(hours=1))
    thread = background(scheduler)
    deadline = time.monotonic() + 10
    while scheduler._runs_store is None and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    thread.join(10)
    # The first fires of a burst do not pay for importing and opening it (their lag).
    assert scheduler._runs_store is not None and scheduler.fires("later") == []


def test_run_executes_fires_on_a_fixed_set_of_worker_threads(graphs) -> None:
    scheduler = Scheduler(
        f"memory://{uuid.uuid4().hex}", runs=f"memory://{uuid.uuid4().hex}", poll_interval=1, max_workers=2
    )
    for index in range(4):
        scheduler.add(f"tick{index}", graphs.ref("counting"), every(seconds=1), overlap="allow")
    threads: set[str] = set()
    execute = scheduler.execute

    def recording(job):  # type: ignore[no-untyped-def]
        threads.add(threading.current_thread().name)
        return execute(job)

    scheduler.execute = recording  # type: ignore[method-assign]
    thread = background(scheduler)
    time.sleep(2.5)
    scheduler.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert len(graphs.executed()) >= 4  # several fires of each second...
    assert threads <= {"kaygraph-fire-0", "kaygraph-fire-1"}  # ... on two threads, not one each


def test_run_async_is_the_same_engine_on_asyncio(graphs, tmp_path) -> None:
    scheduler = Scheduler(f"sqlite:///{tmp_path}/s.db", runs=f"sqlite:///{tmp_path}/r.db", poll_interval=1)
    scheduler.add("async", graphs.ref("async_counting"), every(seconds=1), overlap="allow")
    scheduler.add("sync", graphs.ref("counting"), every(seconds=1), overlap="allow")

    async def main() -> None:
        task = asyncio.create_task(scheduler.run_async())
        await asyncio.sleep(2.6)
        scheduler.stop()
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    for name in ("async", "sync"):
        fires = [f for f in scheduler.fires(name) if f.status == "succeeded"]
        assert len(fires) >= 2, scheduler.fires(name)
    assert len(graphs.executed()) == len([f for f in scheduler.fires() if f.status == "succeeded"])


def test_overlap_skip_with_a_slow_graph(graphs) -> None:
    scheduler = memory_scheduler()
    scheduler.add("slow", graphs.ref("slow"), every(seconds=1), params={"sleep": 2.5}, overlap="skip")
    thread = background(scheduler)
    time.sleep(4.3)
    scheduler.stop()
    thread.join(10)
    states = [f.status for f in reversed(scheduler.fires("slow"))]
    assert states.count("skipped") >= 2, states
    assert states.count("succeeded") >= 1
    assert len(graphs.executed()) == states.count("succeeded")  # a skipped fire never ran
    assert scheduler.get("slow").skipped == states.count("skipped")


def test_sigterm_stops_cleanly_and_the_running_fire_resumes_elsewhere(graphs, tmp_path) -> None:
    store, runs = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/r.db"
    control = Scheduler(store, runs=runs)
    control.add("long", graphs.ref("two_steps"), every(hours=1), params={"sleep": 2})
    fire = control.trigger("long")
    env = {
        **os.environ,
        "PYTHONPATH": str(graphs.directory),
        "KG_SCHED_COUNT_FILE": str(graphs.count_file),
        "KAYGRAPH_SCHEDULER_SHUTDOWN_TIMEOUT": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "kaygraph", "scheduler", "run", "--store", store, "--runs", runs],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 20
    while control.store.get_fire(fire.fire_id).status != "running" and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "handed back" in output and "stopped" in output
    handed = control.store.get_fire(fire.fire_id)
    assert (handed.status, handed.owner) == ("pending", None)  # not lost, not failed
    from kaygraph.ext.persistence import get_run

    assert get_run(runs, fire.fire_id).status == "cancelled"  # resumable
    assert graphs.executed() == []  # stopped before the second node
    # The next scheduler resumes it after the completed first node.
    [job] = control.tick()
    assert control.execute(job).status == "succeeded"
    assert graphs.executed() == [fire.fire_id]
    assert control.store.get_fire(fire.fire_id).attempts == 2
