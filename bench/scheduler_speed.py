"""Scheduler speed: 10,000 schedules in one process next to APScheduler 3.11, and next-fire cost vs croniter.

    .venv/bin/python bench/scheduler_speed.py [--schedules 10000] [--window 25] [--idle 15] [--no-peer]
        [--store memory|sqlite]

In one run, each contender in its own fresh process (APScheduler in bench/.venvs/apscheduler,
made from PyPI on first use):

* **fire lag**: 10,000 schedules, half cron (``"<s> * * * * *"``, 6 fields with seconds) and half
  interval (every 60 s, offsets spread over the minute), all firing once a minute inside a
  ``--window``-second part of it; each fire runs a one-node in-memory graph (KayGraph: a durable
  run, the real path, with schedules and runs on ``--store``: ``memory`` (default) or ``sqlite``,
  a temporary file each, laid out as by default) or an equivalent job function (APScheduler
  ``BackgroundScheduler``, ``MemoryJobStore``, default thread pool). Lag is the scheduled instant
  to the first line of the node/job (p50, p99; goal p99 <= 50 ms).
* **idle CPU**: the same process between fires (``--idle`` seconds of the gap after that minute's
  window), as a share of one core (goal <= 2 %): sleep until the next fire, no busy polling.
* **memory per schedule**: traced Python memory after adding the schedules (outside the fire
  window, so no run is stored meanwhile), divided by their number.
* **next-fire computations per second** for ``*/5 * * * *`` and ``0 9 * * MON-FRI`` in
  Europe/London across the 2026 spring-forward change: our trigger (croniter underneath plus the
  DST policy) next to croniter used directly, so the ratio is our layer's overhead.

Every figure is a median where it can be (lags: percentiles over all fires of the window).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
APSCHEDULER = ["apscheduler>=3.11,<3.12", "croniter>=7.0"]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def _offsets(count: int, window: float) -> list[float]:
    """Where in the minute each schedule fires: spread over ``window`` seconds from :00."""
    return [window * index / count for index in range(count)]


def _wait_for_second(target: float) -> None:
    """Sleep until the wall clock is at ``target`` seconds into a minute (the next such moment)."""
    now = time.time()
    start = now - now % 60 + target
    if start <= now:
        start += 60
    time.sleep(start - now)


def _lag(offset_of: float) -> float:
    """Seconds since the latest scheduled instant of a once-a-minute schedule firing at ``offset_of``."""
    now = time.time()
    return (now - offset_of) % 60


def _measure(lags: list[float], window: float, idle: float, memory: float) -> dict[str, float]:
    """The figures of a running scheduler whose schedules have not fired yet: the next minute's
    fires (every schedule once), then the CPU of the idle gap after them."""
    import resource

    lags.clear()
    _wait_for_second(window + 1.5)
    fired = list(lags)
    _wait_for_second(window + 3)  # idle after a minute's work, like any gap between fires
    cpu_before, wall_before = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    time.sleep(idle)
    cpu_after, wall_after = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    return {
        "fires": len(fired),
        "lag_p50_ms": _percentile(fired, 0.5) * 1000,
        "lag_p99_ms": _percentile(fired, 0.99) * 1000,
        "idle_cpu_percent": cpu / (wall_after - wall_before) * 100,
        "bytes_per_schedule": memory,
    }


# -- KayGraph worker -------------------------------------------------------------------------------


def kaygraph_worker(count: int, window: float, idle: float, store: str = "memory") -> dict[str, float]:
    import threading
    import tracemalloc

    from kaygraph import Graph, Node
    from kaygraph.ext.scheduler import Scheduler, cron
    from kaygraph.ext.scheduler.triggers import IntervalTrigger

    lags: list[float] = []

    class Mark(Node):
        def exec(self, _):
            lags.append(_lag(self.params["offset"]))

    module = type(sys)("bench_graphs")
    module.build = lambda: Graph(start=Mark(), name="bench")  # type: ignore[attr-defined]
    sys.modules["bench_graphs"] = module

    import tempfile

    # Runs go where the schedules are (runs.db next to schedules.db for SQLite), as by default.
    url = "memory://bench" if store == "memory" else f"sqlite:///{tempfile.mkdtemp()}/schedules.db"
    # The scheduler runs while the schedules are added (which can take a minute on a busy
    # machine), so each schedule's first fire is ahead of it and nothing piles up.
    scheduler = Scheduler(url, max_workers=32, grace=60)
    thread = threading.Thread(target=scheduler.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    # Add outside the minute's fire window, so no fire runs (and stores its run) while the
    # memory of the schedules themselves is measured.
    _wait_for_second(window + 1)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for index, offset in enumerate(_offsets(count, window)):
        if index % 2:
            trigger = IntervalTrigger(60, start=offset)  # once a minute at this offset
        else:
            second = int(offset)
            trigger = cron(f"{second} * * * * *")
            offset = float(second)
        options = {"params": {"offset": offset}, "overlap": "allow"}
        scheduler.add(f"s{index}", "bench_graphs:build", trigger, **options)
    memory = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()

    result = _measure(lags, window, idle, memory)
    scheduler.stop()
    thread.join(30)
    return result


# -- APScheduler worker (runs in the peer venv: no kaygraph import) --------------------------------


def apscheduler_worker(count: int, window: float, idle: float, store: str = "memory") -> dict[str, float]:
    import datetime as dt
    import tracemalloc

    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    lags: list[float] = []

    def job(offset: float) -> None:
        lags.append(_lag(offset))

    scheduler = BackgroundScheduler(timezone="UTC")
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    for index, offset in enumerate(_offsets(count, window)):
        if index % 2:
            start = epoch + dt.timedelta(seconds=offset)
            trigger = IntervalTrigger(seconds=60, start_date=start, timezone="UTC")
        else:
            offset = float(int(offset))
            trigger = CronTrigger(second=int(offset), timezone="UTC")
        scheduler.add_job(job, trigger, args=[offset], id=f"s{index}", misfire_grace_time=60, max_instances=2)
    memory = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()

    _wait_for_second(window + 3)
    scheduler.start()  # next run times are computed from now: nothing missed while adding
    result = _measure(lags, window, idle, memory)
    scheduler.shutdown(wait=True)
    return result


# -- next-fire computations --------------------------------------------------------------------------


def next_fire_rates(fires: int = 5_000, rounds: int = 3) -> dict[str, dict[str, float]]:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from _peers import median
    from croniter import croniter

    from kaygraph.ext.scheduler import cron

    london = ZoneInfo("Europe/London")
    start = dt.datetime(2026, 3, 1, tzinfo=london)  # iterations cross the 29 March change
    results: dict[str, dict[str, float]] = {}
    for expression in ("*/5 * * * *", "0 9 * * MON-FRI"):
        ours, theirs = [], []
        trigger = cron(expression, timezone="Europe/London")
        for _ in range(rounds):
            began = time.perf_counter()
            iterator = croniter(expression, start)
            for _ in range(fires):
                iterator.get_next(dt.datetime)
            theirs.append(fires / (time.perf_counter() - began))
            began = time.perf_counter()
            for counted, _ in enumerate(trigger.fires(start.timestamp()), 1):
                if counted == fires:
                    break
            ours.append(fires / (time.perf_counter() - began))
        results[expression] = {"kaygraph": median(ours), "croniter": median(theirs)}
    return results


def _run_worker(python: str, name: str, args: argparse.Namespace) -> dict[str, float]:
    command = [python, str(Path(__file__).resolve()), "--worker", name, "--schedules", str(args.schedules),
               "--window", str(args.window), "--idle", str(args.idle), "--store", args.store]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {name} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument(
        "--window", type=float, default=25.0, help="seconds of each minute the fires spread over"
    )
    parser.add_argument("--idle", type=float, default=15.0, help="seconds of idle CPU measurement")
    parser.add_argument("--no-peer", action="store_true", help="skip APScheduler")
    parser.add_argument(
        "--store", choices=("memory", "sqlite"), default="memory", help="KayGraph's schedule and run store"
    )
    parser.add_argument("--worker", choices=("kaygraph", "apscheduler"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker = kaygraph_worker if args.worker == "kaygraph" else apscheduler_worker
        print(json.dumps(worker(args.schedules, args.window, args.idle, args.store)))
        return

    sys.path.insert(0, str(HERE))
    from _peers import peer_python

    rates = next_fire_rates()
    print("next-fire computations per second (Europe/London, across the 2026-03-29 DST change):")
    for expression, rate in rates.items():
        ratio = rate["kaygraph"] / rate["croniter"]
        print(f"  {expression:<18} kaygraph {rate['kaygraph']:>9,.0f}/s   "
              f"croniter {rate['croniter']:>9,.0f}/s   ratio {ratio:.2f}x")  # fmt: skip

    ours_name = f"kaygraph ({args.store})"
    contenders = {ours_name: _run_worker(sys.executable, "kaygraph", args)}
    if not args.no_peer:
        contenders["apscheduler 3.11"] = _run_worker(
            peer_python("apscheduler", APSCHEDULER), "apscheduler", args
        )
    print(f"\n{args.schedules:,} schedules in one process, each firing once a minute within a "
          f"{args.window:g} s window ({args.schedules:,} fires expected):")  # fmt: skip
    print(f"  {'':<18}{'fires':>7}{'lag p50':>11}{'lag p99':>11}{'idle CPU':>11}{'bytes/schedule':>16}")
    for name, result in contenders.items():
        lags = f"{result['lag_p50_ms']:>9.1f}ms{result['lag_p99_ms']:>9.1f}ms"
        print(f"  {name:<18}{result['fires']:>7.0f}{lags}"
              f"{result['idle_cpu_percent']:>10.2f}%{result['bytes_per_schedule']:>16,.0f}")  # fmt: skip
    if len(contenders) == 2:
        ours, peer = contenders[ours_name], contenders["apscheduler 3.11"]
        print(f"  ratio kaygraph/apscheduler: lag p99 {ours['lag_p99_ms'] / peer['lag_p99_ms']:.2f}x, "
              f"memory {ours['bytes_per_schedule'] / peer['bytes_per_schedule']:.2f}x")  # fmt: skip
    goal = contenders[ours_name]
    print(
        f"  goals: lag p99 <= 50 ms: {'met' if goal['lag_p99_ms'] <= 50 else 'NOT met'}; "
        f"idle CPU <= 2 %: {'met' if goal['idle_cpu_percent'] <= 2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
