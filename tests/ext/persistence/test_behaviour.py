"""Every behaviour of durable runs, once, against every store (memory, sqlite, redis, postgres)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import decimal
import enum
import itertools
import socket
import threading
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from kaygraph import (
    AsyncBatchNode,
    AsyncGraph,
    AsyncNode,
    AsyncParallelBatchGraph,
    AsyncParallelBatchNode,
    BatchGraph,
    BatchNode,
    Graph,
    Node,
    ParallelBatchNode,
)
from kaygraph.core.exceptions import (
    CheckpointCorruptError,
    PersistenceError,
    ResumeError,
    RunLockedError,
    RunNotFoundError,
    SerializationError,
)
from kaygraph.core.executor import InlineExecutor
from kaygraph.ext.persistence import durable
from kaygraph.ext.persistence.leases import _process_start, lease_is_live

# -- graphs used by the tests -------------------------------------------------------------------


class Tracker:
    """Counts executions per name (thread-safe) and fails chosen ones once."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.fail = set(fail or ())
        self.lock = threading.Lock()

    def hit(self, name: str) -> None:
        with self.lock:
            if name in self.fail:
                self.fail.discard(name)
                raise RuntimeError(f"planned failure at {name}")
            self.counts[name] += 1


class Step(Node):
    """Appends its id to shared['trail'] and counts the execution."""

    def __init__(self, tracker: Tracker, name: str) -> None:
        super().__init__(node_id=name)
        self.tracker = tracker

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        self.tracker.hit(self.node_id)
        shared.setdefault("trail", []).append(self.node_id)
        return None


def chain(
    tracker: Tracker, names: list[str], *, graph_name: str = "chain", node_id: str | None = None
) -> Graph:
    nodes = [Step(tracker, name) for name in names]
    for left, right in itertools.pairwise(nodes):
        left >> right
    return Graph(nodes[0], name=graph_name, node_id=node_id)


# -- running, resuming, history -----------------------------------------------------------------


def test_checkpoint_after_every_node_with_state_and_position(store: Any) -> None:
    tracker = Tracker()
    runner = durable(chain(tracker, ["a", "b", "c"]), store)
    result = runner.run({"trail": []}, run_id="r1")
    assert result.status == "succeeded" and result.shared == {"trail": ["a", "b", "c"]}
    history = runner.steps("r1")
    assert [(entry.kind, entry.node_id) for entry in history] == [
        ("start", None),
        ("step", "a"),
        ("step", "b"),
        ("step", "c"),
        ("end", None),
    ]
    assert [entry.state["trail"] for entry in history[1:4]] == [["a"], ["a", "b"], ["a", "b", "c"]]
    assert history[1].next_position == ("b",) and history[3].next_position == (None,)
    info = runner.get_run("r1")
    assert (info.graph_name, info.status, info.steps, info.lease_owner) == ("chain", "succeeded", 3, None)


def test_resume_after_failure_never_reruns_completed_nodes(store: Any) -> None:
    tracker = Tracker(fail={"c"})
    runner = durable(chain(tracker, ["a", "b", "c", "d"]), store)
    with pytest.raises(RuntimeError, match="planned failure at c"):
        runner.run({"trail": []}, run_id="r1")
    assert runner.get_run("r1").status == "failed"
    # As in a new process: the graph is rebuilt (same node ids, fresh objects).
    rebuilt = durable(chain(tracker, ["a", "b", "c", "d"]), store)
    result = rebuilt.resume("r1")
    assert result.shared == {"trail": ["a", "b", "c", "d"]}
    assert tracker.counts == Counter({"a": 1, "b": 1, "c": 1, "d": 1})
    assert rebuilt.get_run("r1").status == "succeeded"


def test_succeeded_run_is_not_run_again(store: Any) -> None:
    tracker = Tracker()
    runner = durable(chain(tracker, ["a", "b"]), store)
    runner.run({"trail": []}, run_id="done")
    again = runner.run({"trail": ["other input"]}, run_id="done")
    resumed = runner.resume("done")
    assert again.already_finished and resumed.already_finished
    assert again.shared == resumed.shared == {"trail": ["a", "b"]}
    assert tracker.counts == Counter({"a": 1, "b": 1})


def test_run_id_of_unfinished_run_must_be_resumed(store: Any) -> None:
    runner = durable(chain(Tracker(fail={"b"}), ["a", "b"]), store)
    with pytest.raises(RuntimeError):
        runner.run({}, run_id="r1")
    with pytest.raises(ResumeError, match=r"resume\('r1'\)"):
        runner.run({}, run_id="r1")


def test_resume_against_changed_graph_names_the_missing_node(store: Any) -> None:
    tracker = Tracker(fail={"b"})
    runner = durable(chain(tracker, ["a", "b", "c"]), store)
    with pytest.raises(RuntimeError):
        runner.run({}, run_id="r1")
    changed = durable(chain(tracker, ["a", "renamed", "c"]), store)
    with pytest.raises(ResumeError, match=r"'b'.*not in graph 'chain'") as caught:
        changed.resume("r1")
    assert caught.value.run_id == "r1"
    assert durable(chain(tracker, ["a", "b", "c"]), store).resume("r1").status == "succeeded"


def test_unknown_run_id(store: Any) -> None:
    runner = durable(chain(Tracker(), ["a"]), store)
    with pytest.raises(RunNotFoundError, match="no run 'nope'"):
        runner.resume("nope")


def test_nested_graph_resumes_mid_way(store: Any) -> None:
    tracker = Tracker(fail={"inner2"})

    def build() -> Graph:
        first = Step(tracker, "first")
        inner = chain(tracker, ["inner1", "inner2", "inner3"], graph_name="inner", node_id="sub")
        last = Step(tracker, "last")
        first >> inner >> last
        return Graph(first, name="outer")

    with pytest.raises(RuntimeError):
        durable(build(), store).run({}, run_id="nested")
    result = durable(build(), store).resume("nested")
    assert result.shared["trail"] == ["first", "inner1", "inner2", "inner3", "last"]
    assert set(tracker.counts.values()) == {1}


class Doubler(BatchNode):
    """Doubles each item; fails once on item 7."""

    tracker: Tracker

    def prep(self, shared: Any) -> Any:
        return shared["items"]

    def exec(self, item: Any) -> Any:
        self.tracker.hit(f"item{item}")
        return item * 2

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["doubled"] = exec_res


class ParallelDoubler(ParallelBatchNode, Doubler):
    pass


class AsyncDoubler(AsyncBatchNode):
    tracker: Tracker

    async def prep_async(self, shared: Any) -> Any:
        return shared["items"]

    async def exec_async(self, item: Any) -> Any:
        await asyncio.sleep(0)
        self.tracker.hit(f"item{item}")
        return item * 2

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["doubled"] = exec_res


class AsyncParallelDoubler(AsyncParallelBatchNode, AsyncDoubler):
    pass


@pytest.mark.parametrize("kind", [Doubler, ParallelDoubler, AsyncDoubler, AsyncParallelDoubler])
def test_batch_resumes_only_unfinished_items(store: Any, kind: type) -> None:
    tracker = Tracker(fail={"item7"})

    def build() -> Graph:
        node = kind(max_workers=2) if kind is ParallelDoubler else kind()
        node.tracker = tracker
        return (AsyncGraph if issubclass(kind, AsyncNode) else Graph)(node, name="batch")

    shared = {"items": list(range(12))}
    if issubclass(kind, AsyncNode):
        with pytest.raises(RuntimeError):
            asyncio.run(durable(build(), store).run_async(shared, run_id="b1"))
        result = asyncio.run(durable(build(), store).resume_async("b1"))
    else:
        with pytest.raises(RuntimeError):
            durable(build(), store).run(shared, run_id="b1")
        result = durable(build(), store).resume("b1")
    assert result.shared["doubled"] == [item * 2 for item in range(12)]
    # Every item that finished before the crash was checkpointed and ran exactly once overall.
    assert tracker.counts == Counter({f"item{item}": 1 for item in range(12)})


@pytest.mark.parametrize("kind", [Doubler, AsyncDoubler])
def test_items_an_executor_finished_with_the_failing_one_are_not_rerun(store: Any, kind: type) -> None:
    """The inline executor finishes every item at once: those that succeeded are checkpointed
    before item 7's failure ends the run, whatever order they are looked at in."""
    tracker = Tracker(fail={"item7"})

    def build() -> Graph:
        node = kind()
        node.tracker = tracker
        return (AsyncGraph if issubclass(kind, AsyncNode) else Graph)(node, name="batch")

    shared = {"items": list(range(24))}
    if issubclass(kind, AsyncNode):
        with pytest.raises(RuntimeError):
            asyncio.run(durable(build(), store).run_async(shared, run_id="e1", executor=InlineExecutor()))
        result = asyncio.run(durable(build(), store).resume_async("e1", executor=InlineExecutor()))
    else:
        with pytest.raises(RuntimeError):
            durable(build(), store).run(shared, run_id="e1", executor=InlineExecutor())
        result = durable(build(), store).resume("e1", executor=InlineExecutor())
    assert result.shared["doubled"] == [item * 2 for item in range(24)]
    assert tracker.counts == Counter({f"item{item}": 1 for item in range(24)})


class Part(Node):
    """A node inside a batch graph: records (param set, node) and fails once where told."""

    def __init__(self, tracker: Tracker, name: str) -> None:
        super().__init__(node_id=name)
        self.tracker = tracker

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        key = f"{self.params['n']}-{self.node_id}"
        self.tracker.hit(key)
        shared.setdefault("done", []).append(key)


class AsyncPart(AsyncNode, Part):
    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        await asyncio.sleep(0.001 * self.params["n"])
        return Part.post(self, shared, prep_res, exec_res)


def two_parts(tracker: Tracker, part: type[Part] = Part) -> Part:
    """``first >> second``: the graph each parameter set of the batch graphs below runs."""
    first = part(tracker, "first")
    first >> part(tracker, "second")
    return first


class Sets(BatchGraph):
    def prep(self, shared: Any) -> Any:
        return [{"n": n} for n in range(5)]


class ParallelSets(AsyncParallelBatchGraph):
    async def prep_async(self, shared: Any) -> Any:
        return [{"n": n} for n in range(5)]


def test_batch_graph_resumes_mid_way(store: Any) -> None:
    tracker = Tracker(fail={"3-second"})

    def build() -> Graph:
        sets = Sets(two_parts(tracker), node_id="sets")
        sets >> Step(tracker, "after")
        return Graph(sets, name="sets")

    with pytest.raises(RuntimeError):
        durable(build(), store).run({}, run_id="bg")
    result = durable(build(), store).resume("bg")
    assert sorted(result.shared["done"]) == sorted(
        f"{n}-{name}" for n in range(5) for name in ("first", "second")
    )
    assert set(tracker.counts.values()) == {1}  # "3-first" finished before the crash and did not rerun


def test_async_parallel_batch_graph_reruns_only_unfinished_param_sets(store: Any) -> None:
    tracker = Tracker(fail={"2-second"})

    def build() -> AsyncGraph:
        return AsyncGraph(ParallelSets(two_parts(tracker, AsyncPart), node_id="sets"), name="parallel-sets")

    with pytest.raises(RuntimeError):
        asyncio.run(durable(build(), store).run_async({}, run_id="apbg"))
    finished_before = {key for key in tracker.counts if key.endswith("-second")}
    result = asyncio.run(durable(build(), store).resume_async("apbg"))
    assert {key for key in result.shared["done"] if key.endswith("-second")} >= {
        f"{n}-second" for n in range(5)
    }
    for key in finished_before:  # a param set that finished before the crash never ran again
        assert tracker.counts[key] == 1 and tracker.counts[key.replace("second", "first")] == 1
    # The documented contract (docs/persistence.md, "What resumes where"): the unfinished set reran
    # from its first node, whose change to shared was already checkpointed, so it is applied twice.
    assert result.shared["done"].count("2-first") == 2


class CountedPrep(Graph):
    """A graph whose own prep counts its calls in shared (not idempotent on purpose)."""

    def prep(self, shared: Any) -> Any:
        shared["prep_calls"] = shared.get("prep_calls", 0) + 1


def test_graph_prep_runs_again_when_resuming_into_that_graph(store: Any) -> None:
    tracker = Tracker(fail={"in2"})

    def build() -> Graph:
        inner = CountedPrep(chain(tracker, ["in1", "in2"]).start_node, node_id="sub")
        first = Step(tracker, "a")
        first >> inner
        return Graph(first, name="prep")

    with pytest.raises(RuntimeError):
        durable(build(), store).run({}, run_id="prep")
    result = durable(build(), store).resume("prep")
    # Documented: graph-level prep is not checkpointed; it runs again on resume, so keep it idempotent.
    assert result.shared["prep_calls"] == 2 and result.shared["trail"] == ["a", "in1", "in2"]


def test_history_list_filter_and_delete_erases_every_trace(store: Any, traces: Any) -> None:
    tracker = Tracker(fail={"x2"})
    first = durable(chain(tracker, ["a", "b"], graph_name="alpha"), store)
    second = durable(chain(tracker, ["x1", "x2"], graph_name="beta"), store)
    before = time.time()
    first.run({}, run_id="alpha-1")
    time.sleep(0.01)
    middle = time.time()
    with pytest.raises(RuntimeError):
        second.run({}, run_id="beta-1")
    first.run({}, run_id="alpha-2")
    assert [info.run_id for info in first.list_runs()] == ["alpha-2", "alpha-1"]
    assert [info.run_id for info in first.list_runs(graph_name=None, status="failed")] == ["beta-1"]
    assert [info.run_id for info in first.list_runs(graph_name=None, since=middle)] == ["alpha-2", "beta-1"]
    assert [info.run_id for info in first.list_runs(graph_name=None, until=middle)] == ["alpha-1"]
    assert [info.run_id for info in first.list_runs(graph_name=None, limit=1)] == ["alpha-2"]
    assert first.list_runs(graph_name=None, since=dt.datetime.fromtimestamp(before))[-1].run_id == "alpha-1"
    assert traces(store, "alpha-1")
    assert first.delete_run("alpha-1") is True
    assert traces(store, "alpha-1") == []
    assert first.delete_run("alpha-1") is False
    assert [info.run_id for info in first.list_runs()] == ["alpha-2"]
    with pytest.raises(RunNotFoundError):
        first.steps("alpha-1")


def test_finished_runs_expire_after_ttl(store: Any, traces: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished run is kept until ``ttl`` seconds after it ended and removed by the next write
    after that. The clock is moved forward instead of sleeping, so no wait races a loaded machine."""
    runner = durable(chain(Tracker(), ["a"]), store, ttl=60)
    runner.run({}, run_id="short-lived")
    info = runner.get_run("short-lived")
    assert info.expires_at is not None
    assert info.expires_at == pytest.approx(info.updated_at + 60, abs=1)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 30)  # half-way: still kept
    durable(chain(Tracker(), ["a"]), store, ttl=None).run({}, run_id="early")
    assert store.get_run("short-lived") is not None
    monkeypatch.setattr(time, "time", lambda: real_time() + 90)  # past the TTL
    # No explicit call: the next run cleans up (Redis also expires the keys natively).
    kept = durable(chain(Tracker(), ["a"]), store, ttl=None).run({}, run_id="kept")
    assert store.get_run("short-lived") is None
    assert traces(store, "short-lived") == []
    assert kept.status == "succeeded" and store.get_run("kept").expires_at is None
    assert store.get_run("early") is not None


def test_purge_expired_on_demand(store: Any, traces: Any) -> None:
    durable(chain(Tracker(), ["a"]), store, ttl=1000).run({}, run_id="later")
    assert store.purge_expired() == 0 and store.get_run("later") is not None
    assert store.purge_expired(now=time.time() + 2000) == 1
    assert store.get_run("later") is None and traces(store, "later") == []


def test_storage_is_bounded_to_the_last_snapshots_and_still_resumes(store: Any) -> None:
    fail_at = {250}

    class Count(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            if shared["n"] + 1 in fail_at:
                fail_at.clear()
                raise RuntimeError("planned")
            shared["n"] += 1
            return "again" if shared["n"] < 300 else "done"

    def build() -> Graph:
        node = Count()
        node - "again" >> node
        node - "done" >> Node()
        return Graph(node, name="loop")

    runner = durable(build(), store, snapshot_every=10, keep_snapshots=3)
    with pytest.raises(RuntimeError):
        runner.run({"n": 0}, run_id="long")
    assert len(store.load("long")) <= 3 * 10 + 2
    result = durable(build(), store, snapshot_every=10, keep_snapshots=3).resume("long")
    assert result.shared["n"] == 300
    history = runner.steps("long")
    assert history[-1].state["n"] == 300 and len(history) <= 3 * 10 + 2


# -- serialization -------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: tuple[int, int]
    tags: set[str] = dataclasses.field(default_factory=set)


def rich_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
        "day": dt.date(2026, 1, 2),
        "span": dt.timedelta(days=1, seconds=2),
        "blob": b"\x00\xffbytes",
        "tags": {"b", "a"},
        "frozen": frozenset({1, 2}),
        "pair": (1, (2, "three")),
        "int_keys": {1: "one", (2, 3): "tuple key"},
        "tricky": {"__kg__": "not a tag"},
        "money": decimal.Decimal("12.30"),
        "id": uuid.UUID(int=7),
        "color": Color.RED,
        "point": Point(1, (2, 3), {"t"}),
        "floats": [1.5, float("inf"), -0.0],
        "nested": [{"a": [None, True, "x"]}],
    }
    import pydantic  # in the dev extra: pydantic support is tested, never silently skipped

    class Model(pydantic.BaseModel):
        name: str
        when: dt.datetime

    globals()["Model"] = Model  # importable by module:qualname, as a user's model would be
    Model.__qualname__ = "Model"
    state["model"] = Model(name="m", when=dt.datetime(2026, 1, 1))
    return state


def test_json_serializer_round_trips_every_supported_type(store: Any) -> None:
    runner = durable(chain(Tracker(), ["a"]), store)
    state = rich_state()
    runner.run(dict(state), run_id="rich")
    restored = runner.run({}, run_id="rich").shared  # already finished: read back from the store
    restored.pop("trail")
    assert restored == state
    assert type(restored["pair"][1]) is tuple and type(restored["frozen"]) is frozenset
    assert type(restored["model"]) is type(state["model"]) and restored["model"].name == "m"


def test_unencodable_value_names_its_key_path_and_suggests_pickle(store: Any) -> None:
    runner = durable(chain(Tracker(), ["a"]), store)
    shared = {"docs": [{}, {}, {}, {"embedding": object()}]}
    with pytest.raises(
        SerializationError, match=r"shared\['docs'\]\[3\]\['embedding'\] of type builtins.object"
    ) as caught:
        runner.run(shared, run_id="bad")
    assert caught.value.key_path == "shared['docs'][3]['embedding']"
    assert "serializer='pickle'" in str(caught.value)
    assert store.get_run("bad") is None  # nothing was stored for a run that could not start


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.value == self.value


def test_pickle_serializer_is_opt_in(store: Any) -> None:
    runner = durable(chain(Tracker(), ["a"]), store, serializer="pickle")
    runner.run({"thing": Opaque(3)}, run_id="pickled")
    assert runner.run({}, run_id="pickled").shared["thing"] == Opaque(3)
    with pytest.raises(RuntimeError):
        durable(chain(Tracker(fail={"a"}), ["a"]), store, serializer="pickle").run({}, run_id="p2")
    # A run written with pickle is never resumed by the JSON serializer by accident.
    with pytest.raises(PersistenceError, match="'pickle' serializer"):
        durable(chain(Tracker(), ["a"]), store).resume("p2")


# -- robustness ----------------------------------------------------------------------------------


def test_corrupt_checkpoint_fails_that_run_only(store: Any, damage_records: Any) -> None:
    tracker = Tracker(fail={"b"})
    runner = durable(chain(tracker, ["a", "b"]), store)
    for run_id in ("broken", "healthy"):
        tracker.fail = {"b"}
        with pytest.raises(RuntimeError):
            runner.run({}, run_id=run_id)
    damage_records(store, "broken", lambda data: data[: len(data) // 2])
    with pytest.raises(CheckpointCorruptError, match="run 'broken'") as caught:
        runner.resume("broken")
    assert caught.value.run_id == "broken"
    assert runner.resume("healthy").status == "succeeded"
    assert {info.run_id for info in runner.list_runs()} == {"broken", "healthy"}


def test_second_writer_on_a_live_run_gets_run_locked_error(store: Any) -> None:
    import subprocess
    import sys

    tracker = Tracker(fail={"b"})
    runner = durable(chain(tracker, ["a", "b"]), store)
    with pytest.raises(RuntimeError):
        runner.run({}, run_id="leased")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{socket.gethostname()}:{holder.pid}:{_process_start(holder.pid)}:token"
        store.update_run("leased", {"lease_owner": owner, "status": "running"})
        # The same pid with another start time is a different process: that lease is dead.
        reused = store.get_run("leased")
        reused.lease_owner = f"{socket.gethostname()}:{holder.pid}:1:token"
        assert lease_is_live(store.get_run("leased")) and not lease_is_live(reused)
        with pytest.raises(RunLockedError, match="run 'leased' is being written by another process"):
            runner.resume("leased")
        with pytest.raises(RunLockedError):
            runner.run({}, run_id="leased")
        with pytest.raises(RunLockedError):
            runner.delete_run("leased")
    finally:
        holder.kill()
        holder.wait()
    assert runner.resume("leased").status == "succeeded"  # the holder died: its lease is reclaimed


def test_a_refused_resume_leaves_no_lease_owner_behind(store: Any) -> None:
    """This process's live lease owners are dropped again when a resume is refused (a
    long-running scheduler resumes many runs: the set must not grow by one per refusal)."""
    from kaygraph.ext.persistence import leases

    leaked: list[int] = []

    class ResumesItself(Node):
        def exec(self, prep_res: Any) -> Any:
            before = len(leases._local_owners)
            with pytest.raises(RunLockedError, match="run 'busy' is being written"):
                durable(Graph(Node(node_id="other"), name="busy"), store).resume("busy")
            leaked.append(len(leases._local_owners) - before)

    owners = len(leases._local_owners)
    durable(Graph(ResumesItself(node_id="first"), name="busy"), store).run({}, run_id="busy")
    assert leaked == [0]
    assert len(leases._local_owners) == owners


def test_record_numbers_fence_a_stale_writer(store: Any) -> None:
    runner = durable(chain(Tracker(), ["a"]), store)
    runner.run({}, run_id="fenced")
    with pytest.raises(RunLockedError, match="already written by another process"):
        store.append("fenced", 0, b"J0000{}")


def test_store_from_configuration(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    from kaygraph.config import configure

    configure({"persistence.directory": str(tmp_path / "state"), "persistence.ttl": 60})
    runner = durable(chain(Tracker(), ["a"]))
    assert runner.store.backend == "sqlite" and runner.ttl == 60
    runner.run({}, run_id="configured")
    assert (tmp_path / "state" / "runs.db").exists()
    configure({"persistence.backend": "memory"})
    assert durable(chain(Tracker(), ["a"])).store.backend == "memory"


def test_unencodable_value_written_by_a_node_fails_the_run_naming_node_and_path(store: Any) -> None:
    class Embed(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["docs"][1]["embedding"] = object()

    runner = durable(Graph(Embed(), name="embed"), store)
    with pytest.raises(
        SerializationError, match=r"run 'e1'.*node 'Embed'.*shared\['docs'\]\[1\]\['embedding'\]"
    ):
        runner.run({"docs": [{}, {}]}, run_id="e1")
    info = runner.get_run("e1")
    assert info.status == "failed" and "SerializationError" in (info.error or "")


def test_pickle_runs_resume_batch_graphs_and_read_history(store: Any) -> None:
    tracker = Tracker(fail={"2-second"})

    def build() -> Graph:
        return Graph(Sets(two_parts(tracker), node_id="sets"), name="pickled-sets")

    with pytest.raises(RuntimeError):
        durable(build(), store, serializer="pickle").run({"thing": Opaque(1)}, run_id="ps")
    result = durable(build(), store, serializer="pickle").resume("ps")
    assert result.shared["thing"] == Opaque(1) and len(result.shared["done"]) == 10
    history = durable(build(), store, serializer="pickle").steps("ps")
    assert history[-1].state["thing"] == Opaque(1) and history[-1].params == {}


def test_final_action_need_not_be_json(store: Any) -> None:
    class Answer(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return {"verdict": "ok"}  # the last node's action is the run's result

    runner = durable(Graph(Answer(), name="answer"), store)
    assert runner.run({}, run_id="a1").action == {"verdict": "ok"}
    assert runner.resume("a1").action == {"verdict": "ok"}


def test_a_graph_that_cannot_run_fails_before_a_run_is_stored(tmp_path):
    from kaygraph import Graph, GraphDefinitionError, Node
    from kaygraph.ext.persistence import durable

    first = Node(node_id="same")
    first >> Node(node_id="same")
    runner = durable(Graph(start=first), f"sqlite:///{tmp_path / 'runs.db'}")
    with pytest.raises(GraphDefinitionError, match="two nodes with node_id 'same'"):
        runner.run({}, run_id="broken")
    assert runner.list_runs() == []


# -- regressions from the adversarial review -----------------------------------------------------

UNPICKLED: list[str] = []


def _unpickled(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Payload:
    """Unpickling it calls ``_unpickled``: any code a pickle in the store could run instead."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickled, ("payload",))


def test_history_is_decoded_only_with_the_readers_serializer(store: Any) -> None:
    from kaygraph.ext.persistence import steps

    durable(chain(Tracker(), ["a"]), store, serializer="pickle").run({"x": Payload()}, run_id="pk")
    UNPICKLED.clear()
    with pytest.raises(
        PersistenceError, match=r"run 'pk'.*'pickle' serializer.*serializer='pickle'"
    ) as caught:
        steps(store, "pk")  # default JSON reader: the store's 'pickle' marker is not obeyed
    assert caught.value.run_id == "pk"
    with pytest.raises(PersistenceError, match=r"run 'pk'.*'pickle'"):
        durable(chain(Tracker(), ["a"]), store).run({}, run_id="pk")  # stored result of a finished run
    assert UNPICKLED == []
    assert steps(store, "pk", serializer="pickle")[-1].state["x"] == "payload"  # explicit opt-in
    durable(chain(Tracker(), ["a"]), store).run({"x": 1}, run_id="js")
    with pytest.raises(PersistenceError, match=r"run 'js'.*'json' serializer"):
        steps(store, "js", serializer="pickle")


def _reframe(change: Any) -> Any:
    """A damage function for ``damage_records``: edit the parsed records, then frame them again
    (so the CRC is fine and only the structure is wrong)."""
    import json

    from kaygraph.ext.persistence.records import frame, unframe

    def damage(data: bytes) -> bytes:
        record = unframe(data, "any", 0)
        change(record)
        return frame(json.dumps(record, separators=(",", ":"), ensure_ascii=False))

    return damage


def test_unknown_class_in_a_checkpoint_names_run_key_path_and_class(store: Any, damage_records: Any) -> None:
    tracker = Tracker(fail={"b"})
    runner = durable(chain(tracker, ["a", "b"]), store)
    with pytest.raises(RuntimeError):
        runner.run({"point": Point(1, 2)}, run_id="cls")

    def rename(record: dict[str, Any]) -> None:
        for state in (record.get("s"), record.get("u")):
            if state and "point" in state:
                state["point"]["cls"] = "kg_never_imported_module:Point"

    damage_records(store, "cls", _reframe(rename))
    with pytest.raises(SerializationError, match=r"shared\['point'\] of run 'cls'") as caught:
        runner.resume("cls")
    message = str(caught.value)
    assert "kg_never_imported_module:Point" in message and "register_type" in message
    assert caught.value.key_path == "shared['point']" and caught.value.run_id == "cls"
    assert "kg_never_imported_module" not in __import__("sys").modules


def test_undecodable_checkpoint_names_run_record_and_key_path(store: Any, damage_records: Any) -> None:
    tracker = Tracker()
    runner = durable(chain(tracker, ["a"]), store)
    runner.run({"docs": [1, (2, 3)]}, run_id="tag")

    def unknown_tag(record: dict[str, Any]) -> None:
        for state in (record.get("s"), record.get("u")):
            if state and "docs" in state:
                state["docs"][1]["__kg__"] = "no-such-tag"

    damage_records(store, "tag", _reframe(unknown_tag))
    with pytest.raises(CheckpointCorruptError, match=r"record \d+ of run 'tag'.*shared\['docs'\]\[1\]"):
        runner.steps("tag")
    with pytest.raises(CheckpointCorruptError, match="run 'tag'"):
        runner.run({}, run_id="tag")  # reading the stored result of the finished run

    runner.run({}, run_id="shape")
    damage_records(store, "shape", _reframe(lambda record: record.pop("k")))
    with pytest.raises(CheckpointCorruptError, match=r"record 0 of run 'shape' is malformed") as caught:
        runner.steps("shape")
    assert caught.value.run_id == "shape"


def test_creating_a_run_purges_any_number_of_expired_runs(store: Any, expired_runs: Any) -> None:
    # One bound parameter per expired run would break past the driver's limit (65535 on Postgres);
    # Redis purges in batches of 1,000. Each store gets a count past its own limit.
    expired_runs(store, 70_000 if store.backend == "postgres" else 2_500)
    runner = durable(chain(Tracker(), ["a"]), store)
    assert runner.run({}, run_id="fresh").status == "succeeded"
    assert [info.run_id for info in store.list_runs()] == ["fresh"]
    assert store.load("old-1") == []


def test_new_runs_purge_at_most_once_per_interval(store: Any, expired_runs: Any) -> None:
    expired_runs(store, 3)
    durable(chain(Tracker(), ["a"]), store).run({}, run_id="first")
    assert [info.run_id for info in store.list_runs()] == ["first"]  # the first new run purged
    expired_runs(store, 3)
    durable(chain(Tracker(), ["a"]), store).run({}, run_id="second")
    assert len(store.list_runs(limit=None)) == 5  # within the interval: not again
    store.next_purge_at = 0.0  # the interval has passed
    durable(chain(Tracker(), ["a"]), store).run({}, run_id="third")
    assert sorted(info.run_id for info in store.list_runs()) == ["first", "second", "third"]


def test_a_failing_purge_never_fails_a_new_run(
    store: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(now: float | None = None) -> int:
        raise RuntimeError("purge exploded")

    monkeypatch.setattr(store, "purge_expired", broken)
    with caplog.at_level("WARNING", logger="kaygraph.ext.persistence"):
        assert durable(chain(Tracker(), ["a"]), store).run({}, run_id="p").status == "succeeded"
    assert "purge exploded" in caplog.text


class ParamsSeen(Step):
    """A step that also records the params it ran with."""

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        super().post(shared, prep_res, exec_res)
        shared.setdefault("seen", []).append(dict(self.params))


def test_resume_restores_the_runs_params(store: Any) -> None:
    tracker = Tracker(fail={"b"})

    def build() -> Graph:
        first, second = ParamsSeen(tracker, "a"), ParamsSeen(tracker, "b")
        first >> second
        return Graph(first, name="params")

    graph = build()
    graph.set_params({"lang": "fr"})
    with pytest.raises(RuntimeError):
        durable(graph, store).run({}, run_id="fr")
    result = durable(build(), store).resume("fr")  # rebuilt without set_params, as in a new process
    assert result.shared["seen"] == [{"lang": "fr"}, {"lang": "fr"}]
    assert durable(build(), store).steps("fr")[-1].params == {"lang": "fr"}


def test_force_delete_of_a_live_run_stops_its_writer_and_leaves_no_trace(store: Any, traces: Any) -> None:
    from kaygraph.ext.persistence import delete_run

    class Erase(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            if self.node_id == "a":
                assert delete_run(store, "gone", force=True)  # an erasure request mid-run
            shared[self.node_id] = "pii"

    first, second = Erase(node_id="a"), Erase(node_id="b")
    first >> second
    with pytest.raises(RunNotFoundError, match="run 'gone' was deleted while this process was writing it"):
        durable(Graph(first, name="erase"), store).run({}, run_id="gone")
    assert traces(store, "gone") == [] and store.get_run("gone") is None
    assert delete_run(store, "gone") is False


def test_a_writer_that_lost_its_lease_stops(store: Any) -> None:
    class Steal(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            store.update_run("stolen", {"lease_owner": "elsewhere:1:1:token"})  # taken over

    first = Steal(node_id="a")
    first >> Steal(node_id="b")
    with pytest.raises(RunLockedError, match="no longer holds the run's lease"):
        durable(Graph(first, name="steal"), store).run({}, run_id="stolen")
    assert store.get_run("stolen").lease_owner == "elsewhere:1:1:token"


def test_delete_run_erases_records_left_without_a_run_row(
    store: Any, traces: Any, orphan_records: Any
) -> None:
    from kaygraph.ext.persistence import delete_run

    orphan_records(store, "orphan")
    assert traces(store, "orphan") != []
    assert delete_run(store, "orphan") is True
    assert traces(store, "orphan") == []


def test_lone_surrogates_round_trip(store: Any) -> None:
    import os

    name = os.fsdecode(b"report-\xff.txt")  # a str with a lone surrogate, as os.listdir gives
    runner = durable(chain(Tracker(), ["a"]), store)
    runner.run({"files": [name], name: 1}, run_id="sur")
    assert runner.run({}, run_id="sur").shared == {"files": [name], name: 1, "trail": ["a"]}


def test_a_failure_message_with_a_lone_surrogate_still_marks_the_run_failed(store: Any) -> None:
    import os

    name = os.fsdecode(b"caf\xe9.txt")  # undecodable file names become lone surrogates

    class Parse(Node):
        def exec(self, prep_res: Any) -> None:
            raise ValueError(f"cannot parse {name}")

    runner = durable(Graph(Parse(node_id="parse"), name="surrogate"), store)
    with pytest.raises(ValueError):
        runner.run({}, run_id="sur-fail")
    info = runner.get_run("sur-fail")
    assert info.status == "failed"
    assert info.lease_owner is None
    assert "cannot parse caf\\udce9.txt" in (info.error or "")


def test_a_top_level_async_parallel_batch_graph_resumes_its_unfinished_sets(store: Any) -> None:
    ran: list[int] = []

    class Work(AsyncNode):
        async def exec_async(self, prep_res: Any) -> int:
            number = self.params["n"]
            ran.append(number)
            if number == 2 and len(ran) <= 3:
                raise ConnectionError("set 2 fails the first time")
            return number

        async def post_async(self, shared: Any, prep_res: Any, exec_res: int) -> None:
            shared.setdefault("done", []).append(exec_res)

    class Sets(AsyncParallelBatchGraph):
        async def prep_async(self, shared: Any) -> list[dict[str, int]]:
            return [{"n": n} for n in range(3)]

    runner = durable(Sets(start=Work(), name="sets", max_concurrency=1), store)
    with pytest.raises(ConnectionError):
        asyncio.run(runner.run_async({}, run_id="pbg-top"))
    result = asyncio.run(runner.resume_async("pbg-top"))
    assert result.status == "succeeded"
    assert sorted(result.shared["done"]) == [0, 1, 2]
    assert ran == [0, 1, 2, 2]  # sets 0 and 1 did not run again
