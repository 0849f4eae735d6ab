"""Limits of durable runs, from both sides, on every store: step counts across resumes, who holds a
lease (this process, another live process, a dead one, another host), the serializer's key paths
and the TTL boundary. Public API only (``durable``, the store interface, ``JSONSerializer``)."""

from __future__ import annotations

import dataclasses
import itertools
import os
import socket
import subprocess
import sys
import time
from typing import Any

import pydantic
import pytest

from kaygraph import Graph, Node
from kaygraph.core.exceptions import RunLockedError, SerializationError
from kaygraph.ext.persistence import JSONSerializer, durable

NAMES = ["a", "b", "c", "d"]


class Step(Node):
    """Appends its id to ``shared["trail"]``; fails once when its id is in ``failures``."""

    def __init__(self, name: str, failures: set[str], hook: Any = None) -> None:
        super().__init__(node_id=name)
        self.failures = failures
        self.hook = hook

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        if self.node_id in self.failures:
            self.failures.discard(self.node_id)
            raise RuntimeError(f"planned failure at {self.node_id}")
        if self.hook is not None:
            self.hook(self.node_id)
        shared.setdefault("trail", []).append(self.node_id)
        return None


def chain(failures: set[str] | None = None, hook: Any = None) -> Graph:
    failures = failures if failures is not None else set()
    nodes = [Step(name, failures, hook) for name in NAMES]
    for left, right in itertools.pairwise(nodes):
        left >> right
    return Graph(nodes[0], name="chain")


# -- the step counter survives resumes -------------------------------------------------------------


def test_a_resumed_run_keeps_counting_its_steps(store: Any) -> None:
    failures = {"c"}
    runner = durable(chain(failures), store)
    with pytest.raises(RuntimeError, match="planned failure at c"):
        runner.run({}, run_id="counted")
    assert (store.get_run("counted").status, store.get_run("counted").steps) == ("failed", 2)

    result = runner.resume("counted")

    assert result.status == "succeeded" and result.shared["trail"] == NAMES
    assert result.steps == 4
    assert store.get_run("counted").steps == 4
    history = [entry for entry in runner.steps("counted") if entry.kind == "step"]
    assert [(entry.node_id, entry.step) for entry in history] == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]


def test_steps_add_up_over_several_resumes(store: Any) -> None:
    failures = {"b"}
    runner = durable(chain(failures), store)
    with pytest.raises(RuntimeError):
        runner.run({}, run_id="twice")
    failures.add("d")
    with pytest.raises(RuntimeError, match="planned failure at d"):
        runner.resume("twice")
    assert store.get_run("twice").steps == 3
    assert runner.resume("twice").steps == 4
    assert store.get_run("twice").steps == 4


# -- leases: who may write a run ----------------------------------------------------------------


def fail_at_b(store: Any, run_id: str) -> Any:
    """A stored, resumable run ``run_id`` that failed at node b; returns its runner."""
    runner = durable(chain({"b"}), store)
    with pytest.raises(RuntimeError):
        runner.run({}, run_id=run_id)
    return runner


def test_a_second_writer_in_this_process_is_refused_while_the_run_is_running(store: Any) -> None:
    attempts: list[str] = []

    def second_writer(node_id: str) -> None:
        if node_id != "b":
            return
        other = durable(chain(), store)  # another runner, same process, same store
        for name, attempt in [
            ("resume", lambda: other.resume("busy")),
            ("run", lambda: other.run({}, run_id="busy")),
            ("delete", lambda: other.delete_run("busy")),
        ]:
            with pytest.raises(RunLockedError, match="run 'busy' is being written by another process"):
                attempt()
            attempts.append(name)

    result = durable(chain(hook=second_writer), store).run({}, run_id="busy")

    assert attempts == ["resume", "run", "delete"]
    assert result.status == "succeeded" and result.shared["trail"] == NAMES
    info = store.get_run("busy")
    assert (info.steps, info.lease_owner) == (4, None)  # the lease is given back at the end


def this_host_owner(pid: int, token: str = "token") -> str:
    return f"{socket.gethostname()}:{pid}::{token}"


def test_a_lease_of_this_process_that_no_writer_uses_is_free(store: Any) -> None:
    runner = fail_at_b(store, "orphaned")
    store.update_run(
        "orphaned", {"lease_owner": this_host_owner(os.getpid(), "forgotten"), "status": "running"}
    )
    assert runner.resume("orphaned").status == "succeeded"


def test_a_lease_of_another_live_process_on_this_host_is_respected(store: Any) -> None:
    runner = fail_at_b(store, "held")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        store.update_run("held", {"lease_owner": this_host_owner(holder.pid), "status": "running"})
        with pytest.raises(RunLockedError, match="run 'held' is being written by another process"):
            runner.resume("held")
    finally:
        holder.kill()
        holder.wait()
    assert runner.resume("held").status == "succeeded"  # dead now: taken over at once


def test_a_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(store: Any) -> None:
    runner = fail_at_b(store, "dead")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    far_future = time.time() + 3600  # even an unexpired lease: the pid proves the writer is gone
    store.update_run(
        "dead",
        {
            "lease_owner": this_host_owner(int(gone.stdout)),
            "lease_expires_at": far_future,
            "status": "running",
        },
    )
    assert runner.resume("dead").status == "succeeded"


def test_a_lease_of_another_host_holds_until_it_expires(store: Any) -> None:
    runner = fail_at_b(store, "remote")
    owner = f"not-{socket.gethostname()}:{os.getpid()}:1:token"  # same pid number, other machine
    store.update_run(
        "remote", {"lease_owner": owner, "lease_expires_at": time.time() + 60, "status": "running"}
    )
    with pytest.raises(RunLockedError, match=r"run 'remote' is being written by another process \(not-"):
        runner.resume("remote")
    with pytest.raises(RunLockedError):
        runner.delete_run("remote")

    store.update_run("remote", {"lease_expires_at": time.time() - 1})

    assert runner.resume("remote").status == "succeeded"


def test_a_lease_of_another_host_without_an_expiry_is_not_live(store: Any) -> None:
    runner = fail_at_b(store, "remote-open")
    store.update_run("remote-open", {"lease_owner": "elsewhere:1:1:token", "lease_expires_at": None})
    assert runner.resume("remote-open").status == "succeeded"


# -- the TTL boundary (no sleeping: purge_expired takes the moment to compare with) -----------------


def test_a_run_expires_exactly_ttl_seconds_after_it_finished(store: Any, traces: Any) -> None:
    durable(chain(), store, ttl=100).run({}, run_id="timed")
    info = store.get_run("timed")
    assert info.expires_at == pytest.approx(info.updated_at + 100, abs=1)

    assert store.purge_expired(now=info.expires_at - 0.01) == 0
    assert store.get_run("timed") is not None
    assert store.purge_expired(now=info.expires_at + 0.01) == 1
    assert store.get_run("timed") is None and traces(store, "timed") == []


def test_a_run_whose_expiry_moved_expires_at_the_new_moment(store: Any) -> None:
    durable(chain(), store, ttl=100).run({}, run_id="moved")
    first = store.get_run("moved").expires_at
    store.update_run("moved", {"expires_at": first + 500})
    assert store.purge_expired(now=first + 1) == 0  # the old moment no longer counts
    assert store.get_run("moved") is not None
    store.update_run("moved", {"expires_at": first - 50})
    assert store.purge_expired(now=first - 49) == 1  # an earlier one does
    assert store.get_run("moved") is None
    assert store.purge_expired(now=first + 501) == 0  # and nothing is left to purge twice


def test_ttl_none_keeps_a_run_forever(store: Any) -> None:
    durable(chain(), store, ttl=None).run({}, run_id="forever")
    assert store.get_run("forever").expires_at is None
    assert store.purge_expired(now=time.time() + 10**9) == 0
    assert store.get_run("forever") is not None


def test_a_failed_run_expires_like_a_finished_one_but_a_running_one_never(store: Any) -> None:
    seen: list[Any] = []

    def look(node_id: str) -> None:
        if node_id == "a":
            seen.append(store.get_run("broken").expires_at)

    failing = durable(chain({"b"}, hook=look), store, ttl=100)
    with pytest.raises(RuntimeError):
        failing.run({}, run_id="broken")
    assert seen == [None]  # while it ran, it could not expire
    info = store.get_run("broken")
    assert info.status == "failed"
    assert info.expires_at == pytest.approx(info.updated_at + 100, abs=1)
    failing.resume("broken")
    assert store.get_run("broken").status == "succeeded"  # resumable until then


# -- serializer key paths ------------------------------------------------------------------------


@dataclasses.dataclass
class Box:
    inner: Any


class Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    payload: Any


OPAQUE = object()


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"pair": (1, (2, OPAQUE))}, "shared['pair'][1][1]"),
        ({"rows": [(0, 1), (2, [3, OPAQUE])]}, "shared['rows'][1][1][1]"),
        ({"point": Box((OPAQUE,))}, "shared['point'].inner[0]"),
        ({"model": Model(payload=[OPAQUE])}, "shared['model']['payload'][0]"),
        ({"by_int": {7: OPAQUE}}, "shared['by_int'][7]"),
        ({"by_tuple": {(1, 2): [OPAQUE]}}, "shared['by_tuple'][(1, 2)][0]"),
        ({"bag": {(1, OPAQUE)}}, "shared['bag'].<item>[1]"),
    ],
    ids=[
        "tuple-in-tuple",
        "list-in-tuple-in-list",
        "dataclass-field",
        "pydantic-field",
        "int-key",
        "tuple-key",
        "set-item",
    ],
)
def test_an_unencodable_value_is_named_by_its_full_key_path(value: Any, path: str) -> None:
    with pytest.raises(SerializationError) as caught:
        JSONSerializer().encode(value, "shared")
    assert caught.value.key_path == path
    assert f"cannot checkpoint {path} of type builtins.object" in str(caught.value)


def test_a_durable_run_names_the_tuple_index_it_cannot_checkpoint(store: Any) -> None:
    with pytest.raises(SerializationError) as caught:
        durable(chain(), store).run({"pair": ("ok", OPAQUE)}, run_id="tuple-path")
    assert caught.value.key_path == "shared['pair'][1]"
    assert store.get_run("tuple-path") is None


class Nested(pydantic.BaseModel):
    label: str
    scores: tuple[float, ...]


class Outer(pydantic.BaseModel):
    items: list[Nested]
    tags: set[str]


def test_pydantic_models_round_trip_through_a_durable_run(store: Any) -> None:
    value = Outer(items=[Nested(label="x", scores=(1.0, 2.5))], tags={"b", "a"})
    runner = durable(chain(), store)
    runner.run({"outer": value, "many": [value, value]}, run_id="models")
    restored = runner.run({}, run_id="models").shared  # finished: read back from the store
    assert restored["outer"] == value and type(restored["outer"]) is Outer
    assert type(restored["outer"].items[0]) is Nested
    assert restored["many"] == [value, value]
