"""Every lifecycle event carries run_id and a per-run seq that only grows, across threads,
tasks, nested graphs and batch graphs."""

from __future__ import annotations

import asyncio
import threading

from kaygraph import (
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    BatchGraph,
    Graph,
    Node,
    ParallelBatchNode,
    RunListener,
)
from kaygraph.core.events import EVENTS


class Recorder(RunListener):
    def __init__(self):
        self.events: list[tuple[int, str, str]] = []
        self.lock = threading.Lock()

    def _record(self, name, kwargs):
        assert kwargs["run"].run_id == kwargs["run_id"]
        with self.lock:  # the list append order is not the seq order across threads; seq is
            self.events.append((kwargs["seq"], name, kwargs["run_id"]))


for _event in EVENTS:

    def _hook(self, _name=_event, **kwargs):
        self._record(_name, kwargs)

    setattr(Recorder, _event, _hook)


def assert_ordered(recorder: Recorder, run_id: str) -> list[str]:
    seqs = [seq for seq, _, _ in recorder.events]
    assert len(set(seqs)) == len(seqs), "seq numbers repeat"
    assert sorted(seqs) == list(range(1, len(seqs) + 1))
    assert {rid for _, _, rid in recorder.events} == {run_id}
    ordered = sorted(recorder.events)
    assert ordered[0][1] == "on_run_start" and ordered[-1][1] == "on_run_end"
    return [name for _, name, _ in ordered]


class Flaky(Node):
    def exec(self, prep_res):
        if self.cur_retry == 0:
            raise ValueError("first attempt fails")
        return 1


class Square(ParallelBatchNode):
    def prep(self, shared):
        return list(range(6))

    def exec(self, item):
        return item * item


class Inner(BatchGraph):
    def prep(self, shared):
        return [{"k": 1}, {"k": 2}]


def test_sequence_across_threads_nested_and_batch_graphs():
    inner = Inner(start=Flaky(max_retries=2), name="inner")
    first = Square(max_workers=3)
    first >> inner
    recorder = Recorder()
    Graph(start=first).run({}, listeners=[recorder], run_id="run-1")
    names = assert_ordered(recorder, "run-1")
    assert names.count("on_batch_item_start") == 6 + 2
    assert names.count("on_retry") == 2
    assert len(names) > 20


class Wait(AsyncNode):
    async def exec_async(self, prep_res):
        await asyncio.sleep(0)


class Gather(AsyncParallelBatchNode):
    async def prep_async(self, shared):
        return list(range(5))

    async def exec_async(self, item):
        await asyncio.sleep(0.001 * (5 - item))
        return item


class Sets(AsyncParallelBatchGraph):
    async def prep_async(self, shared):
        return [{"n": n} for n in range(3)]


def test_sequence_across_tasks_async():
    gather = Gather()
    gather >> Sets(start=Wait())
    recorder = Recorder()
    asyncio.run(AsyncGraph(start=gather).run_async({}, listeners=[recorder], run_id="run-2"))
    names = assert_ordered(recorder, "run-2")
    assert names.count("on_batch_item_end") == 5 + 3


def test_a_random_run_id_is_the_same_on_every_event():
    recorder = Recorder()
    Graph(start=Node()).run({}, listeners=[recorder])
    run_ids = {rid for _, _, rid in recorder.events}
    assert len(run_ids) == 1 and len(run_ids.pop()) == 32
