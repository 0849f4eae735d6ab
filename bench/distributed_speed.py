"""Distributed executors against the engines used directly, on 2 local workers each.

    .venv/bin/python bench/distributed_speed.py [--rounds 3] [--only process,dask,ray]

Peer: each engine on its own, in the same run, on the same items: ``concurrent.futures``
``ProcessPoolExecutor.map``, ``dask.distributed`` ``client.map`` + ``client.gather``, Ray
``f.remote`` + ``ray.get``. Three measurements, medians over rounds:

1. Speed-up: 40 CPU-bound pure-Python items of ~50 ms, wall time on 2 workers vs the same items
   serially in this process, for the raw engine and for ``graph.run(executor=...)`` (a BatchNode,
   automatic chunking). Goal: >= 1.8x on process and Ray, and >= 0.95x of the raw engine's
   speed-up on every executor (2.0x is this machine's limit).
2. Overhead: 2,000 tiny items; KayGraph's time over the raw engine's one-task-per-item
   submit/gather (goal <= 1.2x; with automatic chunking below 1.0x), and with chunk_size=1.
3. Sharing: a 10 MB input used by 40 items (one task each): bytes KayGraph sends and wall time,
   with the input sent once (Dask scatter / Ray object store, the default) vs naively per task.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_peers.py beside this file

from _peers import median

from kaygraph import BatchNode, Graph

WORKERS = 2
HEAVY_ITEMS = 40
TINY_ITEMS = 2000
SHARED_BYTES = 10 * 1024 * 1024
LOOPS_PER_ITEM = 0  # set by calibrate(): pure-Python loop iterations that take ~50 ms here


def burn(loops: int) -> int:
    total = 0
    for value in range(loops):
        total += value * value
    return total


def tiny(value: int) -> int:
    return value + 1


def size_of(job: tuple[int, bytes]) -> int:
    return job[0] + len(job[1])


class Map(BatchNode):
    """exec = the benchmark's function, once per item; the same node measures every case."""

    def __init__(self, function: Callable[[Any], Any], chunk_size: int | None = None) -> None:
        super().__init__()
        self.function = function
        if chunk_size is not None:
            self.chunk_size = chunk_size

    def prep(self, shared: dict[str, Any]) -> list[Any]:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        return self.function(item)

    def post(self, shared: dict[str, Any], prep_res: Any, results: list[Any]) -> None:
        shared["results"] = results


def kaygraph_map(executor: Any, function: Callable[[Any], Any], items: list[Any], **node: Any) -> list[Any]:
    shared: dict[str, Any] = {"items": items}
    Graph(Map(function, **node), name="bench").run(shared, executor=executor)
    return shared["results"]


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def calibrate() -> int:
    loops = 200_000
    while True:
        elapsed, _ = timed(lambda loops=loops: burn(loops))  # type: ignore[misc]
        if elapsed > 0.02:
            return int(loops * 0.05 / elapsed)
        loops *= 2


# -- engines: (KayGraph executor, raw map) ------------------------------------------------------


class Engine:
    name = ""

    def raw_map(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        raise NotImplementedError

    def executor(self, **options: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ProcessEngine(Engine):
    name = "process"

    def __init__(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("forkserver"))
        list(self.pool.map(tiny, range(WORKERS * 4)))  # start the workers
        self.executors: list[Any] = []

    def raw_map(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        return list(self.pool.map(function, items))

    def executor(self, **options: Any) -> Any:
        from kaygraph.ext.distributed import ProcessExecutor

        executor = ProcessExecutor(WORKERS, **options).start()
        executor.submit(tiny, 1).result()
        self.executors.append(executor)
        return executor

    def close(self) -> None:
        for executor in self.executors:
            executor.close()
        self.pool.shutdown()


class DaskEngine(Engine):
    name = "dask"

    def __init__(self) -> None:
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        )
        self.client = Client(self.cluster, set_as_default=False)
        self.executors: list[Any] = []

    def raw_map(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        return self.client.gather(self.client.map(function, items, pure=False))  # type: ignore[no-any-return]

    def executor(self, **options: Any) -> Any:
        from kaygraph.ext.distributed import DaskExecutor

        executor = DaskExecutor(client=self.client, **options).start()
        self.executors.append(executor)
        return executor

    def close(self) -> None:
        for executor in self.executors:
            executor.close()
        self.client.close()
        self.cluster.close()


class RayEngine(Engine):
    name = "ray"

    def __init__(self) -> None:
        from kaygraph.ext.distributed import RayExecutor

        self.owner = RayExecutor(workers=WORKERS, object_store_memory=512 * 1024 * 1024).start()
        import ray

        self.ray = ray
        self.remotes: dict[Any, Any] = {}

    def raw_map(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        remote = self.remotes.get(function)
        if remote is None:
            remote = self.remotes[function] = self.ray.remote(function)
        return self.ray.get([remote.remote(item) for item in items])  # type: ignore[no-any-return]

    def executor(self, **options: Any) -> Any:
        from kaygraph.ext.distributed import RayExecutor

        return RayExecutor(**options).start()  # the Ray started above; not shut down by close()

    def close(self) -> None:
        self.owner.close()


ENGINES: dict[str, Callable[[], Engine]] = {"process": ProcessEngine, "dask": DaskEngine, "ray": RayEngine}


# -- measurements -------------------------------------------------------------------------------


def speedup(engine: Engine, executor: Any, rounds: int, serial: float) -> dict[str, float]:
    items = [LOOPS_PER_ITEM] * HEAVY_ITEMS
    engine.raw_map(burn, items[:WORKERS])  # warm: the function is on the workers
    kaygraph_map(executor, burn, items[:WORKERS])
    raw, ours = [], []
    for _ in range(rounds):
        raw.append(timed(lambda: engine.raw_map(burn, items))[0])
        ours.append(timed(lambda: kaygraph_map(executor, burn, items))[0])
    return {"raw": serial / median(raw), "kaygraph": serial / median(ours)}


def overhead(engine: Engine, executor: Any, rounds: int) -> dict[str, float]:
    items = list(range(TINY_ITEMS))
    expected = [item + 1 for item in items]
    raw, chunked, unchunked = [], [], []
    for _ in range(rounds):
        elapsed, result = timed(lambda: engine.raw_map(tiny, items))
        assert result == expected
        raw.append(elapsed)
        elapsed, result = timed(lambda: kaygraph_map(executor, tiny, items))
        assert result == expected
        chunked.append(elapsed)
        elapsed, result = timed(lambda: kaygraph_map(executor, tiny, items, chunk_size=1))
        assert result == expected
        unchunked.append(elapsed)
    return {"raw": median(raw), "chunked": median(chunked), "unchunked": median(unchunked)}


def sharing(engine: Engine, rounds: int) -> dict[str, float]:
    blob = os.urandom(SHARED_BYTES)
    items = [(index, blob) for index in range(HEAVY_ITEMS)]
    expected = [index + SHARED_BYTES for index in range(HEAVY_ITEMS)]
    results: dict[str, float] = {}
    for mode, threshold in (("shared", 1 << 20), ("naive", 0)):
        times, sent = [], []
        for _ in range(rounds):
            executor = engine.executor(share_threshold=threshold)
            run = lambda executor=executor: kaygraph_map(executor, size_of, items, chunk_size=1)  # noqa: E731
            elapsed, result = timed(run)
            assert result == expected
            times.append(elapsed)
            sent.append(executor.stats["payload_bytes"] + executor.stats["shared_bytes"])
            executor.close()
        results[f"{mode}_seconds"] = median(times)
        results[f"{mode}_bytes"] = median(sent)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="process,dask,ray", help="comma-separated engines")
    args = parser.parse_args()
    global LOOPS_PER_ITEM
    LOOPS_PER_ITEM = calibrate()
    serial_run = lambda: [burn(LOOPS_PER_ITEM) for _ in range(HEAVY_ITEMS)]  # noqa: E731
    serial = median([timed(serial_run)[0] for _ in range(args.rounds)])
    print(f"{HEAVY_ITEMS} items of ~{serial / HEAVY_ITEMS * 1000:.0f} ms: serial {serial:.2f} s here")
    print(f"{WORKERS} workers per engine, medians of {args.rounds} rounds\n")
    rows = []
    for name in args.only.split(","):
        engine = ENGINES[name]()
        try:
            executor = engine.executor()
            speed = speedup(engine, executor, args.rounds, serial)
            rows.append((name, speed, overhead(engine, executor, args.rounds), sharing(engine, args.rounds)))
        finally:
            engine.close()
    report(rows)


def report(rows: list[tuple[str, dict[str, float], dict[str, float], dict[str, float]]]) -> None:
    print(f"1. speed-up of {HEAVY_ITEMS} x 50 ms items (serial time / wall time)")
    print(f"   {'executor':<9} {'raw engine':>11} {'KayGraph':>9} {'KayGraph/raw':>13}")
    for name, speed, _, _ in rows:
        ratio = speed["kaygraph"] / speed["raw"]
        print(f"   {name:<9} {speed['raw']:>10.2f}x {speed['kaygraph']:>8.2f}x {ratio:>12.2f}x")
    print(f"\n2. {TINY_ITEMS} tiny items: wall time, KayGraph / raw submit+gather (one task per item)")
    print(f"   {'executor':<9} {'raw':>8} {'KayGraph':>9} {'ratio':>6} {'chunk=1':>8} {'ratio':>6}")
    for name, _, over, _ in rows:
        chunked, unchunked = over["chunked"] / over["raw"], over["unchunked"] / over["raw"]
        print(
            f"   {name:<9} {over['raw']:>7.3f}s {over['chunked']:>8.3f}s {chunked:>5.2f}x "
            f"{over['unchunked']:>7.3f}s {unchunked:>5.2f}x"
        )
    megabytes = SHARED_BYTES // 2**20
    print(f"\n3. a {megabytes} MB input used by {HEAVY_ITEMS} items (one task each): bytes sent, wall time")
    columns = (("shared", 10), ("naive", 10), ("bytes", 7), ("shared", 8), ("naive", 8), ("time", 6))
    print(f"   {'executor':<9} " + " ".join(f"{head:>{width}}" for head, width in columns))
    for name, _, _, share in rows:
        print(
            f"   {name:<9} {share['shared_bytes'] / 2**20:>8.1f}MB {share['naive_bytes'] / 2**20:>8.1f}MB "
            f"{share['naive_bytes'] / share['shared_bytes']:>6.1f}x {share['shared_seconds']:>7.2f}s "
            f"{share['naive_seconds']:>7.2f}s {share['naive_seconds'] / share['shared_seconds']:>5.2f}x"
        )
    print("   (process: no object store, so the input travels with every task either way)")


if __name__ == "__main__":
    main()
