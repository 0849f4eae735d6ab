"""The ScheduleStore contract, written once and run on memory, SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kaygraph.ext.scheduler import Fire, Schedule, open_schedule_store
from kaygraph.ext.scheduler.abc import ANY_OWNER, PassWrite, fire_id


def schedule(name: str = "report", **fields: Any) -> Schedule:
    defaults: dict[str, Any] = {
        "graph_ref": "app.graphs:report",
        "trigger": {"type": "every", "seconds": 60.0},
        "shared": {"to": ["ops@example.com"]},
        "created_at": 100.0,
        "next_fire_at": 160.0,
        "wake_at": 160.0,
    }
    defaults.update(fields)
    return Schedule(name=name, **defaults)


def fire(name: str = "report", at: float = 160.0, **fields: Any) -> Fire:
    return Fire(fire_id(name, at), name, at, fields.pop("due_at", at), created_at=at, **fields)


def test_add_get_list_replace_remove(store) -> None:
    assert store.add_schedule(schedule("b"))
    assert store.add_schedule(schedule("a", paused=True))
    assert not store.add_schedule(schedule("a"))  # exists: unchanged
    assert store.get_schedule("a").paused is True
    assert [s.name for s in store.list_schedules()] == ["a", "b"]
    got = store.get_schedule("b")
    assert got == schedule("b")  # every field survives the round trip
    assert store.add_schedule(schedule("a", jitter=5.0), replace=True)
    assert store.get_schedule("a").jitter == 5.0 and store.get_schedule("a").paused is False
    store.put_fires([fire("a", 160.0), fire("a", 220.0, status="succeeded")])
    assert store.remove_schedule("a")
    assert store.get_schedule("a") is None
    assert not store.remove_schedule("a")
    # Pending fires go with the schedule; finished ones stay as history.
    assert [f.status for f in store.list_fires(schedule="a")] == ["succeeded"]
    assert store.get_schedule("missing") is None


def test_update_schedule(store) -> None:
    store.add_schedule(schedule())
    assert store.update_schedule("report", {"paused": True, "missed": 3})
    got = store.get_schedule("report")
    assert got.paused is True and got.missed == 3
    assert not store.update_schedule("missing", {"paused": True})
    with pytest.raises(ValueError, match="unknown schedule field"):
        store.update_schedule("report", {"graph": "x"})


def test_lock_due_hands_each_schedule_to_one_owner(store) -> None:
    store.add_schedule(schedule("due-1", wake_at=150.0))
    store.add_schedule(schedule("due-2", wake_at=155.0))
    store.add_schedule(schedule("later", wake_at=500.0))
    store.add_schedule(schedule("never", wake_at=None, next_fire_at=None))
    first = store.lock_due(160.0, "A", 190.0, 10)
    assert sorted(s.name for s in first) == ["due-1", "due-2"]
    assert all(s.lock_owner == "A" and s.lock_until == 190.0 for s in first)
    assert store.lock_due(160.0, "B", 190.0, 10) == []  # locked by A
    # A's lock expires (A died): B takes over.
    assert sorted(s.name for s in store.lock_due(191.0, "B", 220.0, 10)) == ["due-1", "due-2"]
    assert not store.unlock("due-1", "A", {"wake_at": 300.0})  # A lost the lock
    assert store.unlock("due-1", "B", {"wake_at": 300.0, "next_fire_at": 300.0})
    got = store.get_schedule("due-1")
    assert (got.lock_owner, got.lock_until, got.wake_at) == (None, None, 300.0)
    assert store.lock_due(200.0, "C", 230.0, 10) == []


def test_lock_due_respects_the_limit_and_orders_by_wake_time(store) -> None:
    for index in range(5):
        store.add_schedule(schedule(f"s{index}", wake_at=100.0 + index))
    assert [s.name for s in store.lock_due(200.0, "A", 300.0, 2)] == ["s0", "s1"]
    assert [s.name for s in store.lock_due(200.0, "A", 300.0, 10)] == ["s2", "s3", "s4"]


def test_poke_makes_a_schedule_due_even_while_locked(store) -> None:
    store.add_schedule(schedule(wake_at=1000.0))
    assert store.next_wake() == 1000.0
    store.poke("report")
    assert store.next_wake() == 0.0
    [locked] = store.lock_due(10.0, "A", 40.0, 10)
    assert locked.poked is False
    assert store.next_wake() == 1000.0
    store.poke("report")  # a fire ended while A held the lock
    assert store.next_wake() == 40.0  # due, but nobody else takes it before A's lock expires
    assert store.unlock("report", "A", {"wake_at": 1000.0})
    assert [s.name for s in store.lock_due(11.0, "B", 41.0, 10)] == ["report"]  # the poke was kept


def test_next_wake(store) -> None:
    assert store.next_wake() is None
    store.add_schedule(schedule("a", wake_at=300.0))
    store.add_schedule(schedule("b", wake_at=200.0))
    assert store.next_wake() == 200.0
    store.lock_due(250.0, "A", 400.0, 1)  # locks b until 400
    assert store.next_wake() == 300.0


def test_lock_due_takes_poked_schedules_first_and_never_ones_without_a_wake(store) -> None:
    for index in range(6):
        store.add_schedule(schedule(f"s{index}", wake_at=100.0 + index))
    store.add_schedule(schedule("paused", wake_at=None, next_fire_at=None, paused=True))
    store.poke("s5")
    assert store.next_wake() == 0.0
    assert {s.name for s in store.lock_due(200.0, "A", 300.0, 2)} == {"s5", "s0"}
    # Locked ones count from their lock's end; the earliest unlocked one is s1.
    assert store.next_wake() == 101.0
    assert {s.name for s in store.lock_due(200.0, "A", 300.0, 10)} == {"s1", "s2", "s3", "s4"}
    assert store.next_wake() == 300.0  # everything due is locked by A until 300
    assert store.lock_due(10**6, "B", 10**6 + 30, 10) and store.get_schedule("paused").lock_owner is None


def test_write_pass_applies_each_schedules_decision_and_says_which_claims_won(store) -> None:
    store.add_schedule(schedule("a", wake_at=100.0))
    store.add_schedule(schedule("b", wake_at=100.0))
    store.put_fires([fire("b", 100.0)])
    taken = {"status": "running", "owner": "X", "lease_until": 999.0}
    assert store.update_fire(fire_id("b", 100.0), taken, if_owner=None)  # another scheduler has it
    assert len(store.lock_due(150.0, "A", 180.0, 10)) == 2
    claim = {"status": "running", "owner": "A", "lease_until": 180.0, "attempts": 1}
    writes = [
        PassWrite(
            "a",
            [fire("a", 100.0), fire("a", 160.0, due_at=170.0)],
            [(fire_id("a", 100.0), claim, None)],
            {"wake_at": 170.0, "next_fire_at": 220.0},
        ),
        PassWrite(
            "b",
            [fire("b", 100.0, status="skipped")],  # exists already: left as it is
            [
                (fire_id("b", 100.0), claim, None),
                (fire_id("b", 100.0), {"cancel_requested": True}, ANY_OWNER),
            ],
            {"wake_at": 200.0},
        ),
    ]
    assert store.write_pass("A", writes) == [[True], [False, True]]
    won = store.get_fire(fire_id("a", 100.0))
    assert (won.status, won.owner, won.attempts) == ("running", "A", 1)
    assert store.get_fire(fire_id("a", 160.0)).status == "pending"
    lost = store.get_fire(fire_id("b", 100.0))
    assert (lost.owner, lost.status, lost.cancel_requested) == ("X", "running", True)
    a = store.get_schedule("a")
    assert (a.lock_owner, a.next_fire_at, a.wake_at) == (None, 220.0, 170.0)
    assert store.get_schedule("b").lock_owner is None and store.next_wake() == 170.0
    # A write for a schedule whose lock is gone (it expired, B took it) does not unlock B's.
    store.lock_due(500.0, "B", 530.0, 10)
    store.write_pass("A", [PassWrite("a", [], [], {"wake_at": 900.0})])
    assert store.get_schedule("a").lock_owner == "B"
    assert store.write_pass("A", []) == []


def test_active_fires_of_several_schedules_at_once(store) -> None:
    store.put_fires(
        [
            fire("a", 160.0),
            fire("a", 100.0),
            fire("b", 100.0, status="succeeded"),
            fire("c", 50.0, status="running", owner="X"),
        ]
    )
    got = store.active_fires_of(["a", "b", "c", "none"])
    assert {name: [f.fire_time for f in fires] for name, fires in got.items()} == {
        "a": [100.0, 160.0],
        "b": [],
        "c": [50.0],
        "none": [],
    }
    assert got["c"][0].owner == "X" and store.active_fires_of([]) == {}


def test_put_fires_is_idempotent_by_fire_id(store) -> None:
    assert store.put_fires([fire(at=160.0), fire(at=220.0)]) == 2
    assert store.put_fires([fire(at=160.0, status="skipped"), fire(at=280.0)]) == 1
    assert store.get_fire(fire_id("report", 160.0)).status == "pending"  # the first one stays
    assert [f.fire_time for f in store.list_fires()] == [280.0, 220.0, 160.0]
    assert store.get_fire("nope") is None


def test_update_fire_is_a_compare_and_set_on_the_owner(store) -> None:
    store.put_fires([fire()])
    the_id = fire_id("report", 160.0)
    claim = {"status": "running", "owner": "A", "lease_until": 190.0, "attempts": 1}
    assert store.update_fire(the_id, claim, if_owner=None)
    assert not store.update_fire(the_id, {**claim, "owner": "B"}, if_owner=None)  # A has it
    assert store.update_fire(the_id, {**claim, "owner": "B", "attempts": 2}, if_owner="A")  # A died
    got = store.get_fire(the_id)
    assert (got.owner, got.status, got.attempts) == ("B", "running", 2)
    assert store.update_fire(the_id, {"status": "succeeded", "error": None, "ended_at": 200.0})
    assert not store.update_fire("missing", {"status": "failed"})
    with pytest.raises(ValueError, match="unknown fire field"):
        store.update_fire(the_id, {"colour": "red"})


def test_active_fires_follow_status_changes(store) -> None:
    store.put_fires(
        [fire(at=160.0), fire(at=220.0), fire(at=100.0, status="succeeded"), fire("other", 160.0)]
    )
    assert [f.fire_time for f in store.active_fires("report")] == [160.0, 220.0]
    store.update_fire(fire_id("report", 160.0), {"status": "running", "owner": "A"})
    assert [f.status for f in store.active_fires("report")] == ["running", "pending"]
    store.update_fire(fire_id("report", 160.0), {"status": "failed", "error": "boom"})
    assert [f.fire_time for f in store.active_fires("report")] == [220.0]


def test_list_fires_filters(store) -> None:
    store.put_fires([fire(at=t) for t in (100.0, 160.0, 220.0)] + [fire("other", 160.0, status="failed")])
    assert [f.fire_time for f in store.list_fires(schedule="report", since=160.0)] == [220.0, 160.0]
    assert [f.fire_time for f in store.list_fires(schedule="report", until=160.0)] == [100.0]
    assert [f.schedule for f in store.list_fires(status="failed")] == ["other"]
    assert len(store.list_fires(limit=2)) == 2


def test_renew_fires_extends_own_leases_and_reports_cancellations(store) -> None:
    store.put_fires([fire(at=160.0), fire(at=220.0), fire(at=280.0)])
    ids = [fire_id("report", t) for t in (160.0, 220.0, 280.0)]
    for the_id, owner in zip(ids, ("A", "A", "B"), strict=True):
        store.update_fire(the_id, {"status": "running", "owner": owner, "lease_until": 190.0})
    store.update_fire(ids[1], {"cancel_requested": True})
    assert store.renew_fires(ids, "A", 500.0) == [ids[1]]
    assert [store.get_fire(i).lease_until for i in ids] == [500.0, 500.0, 190.0]
    assert store.renew_fires([], "A", 600.0) == []


def test_concurrent_lockers_never_share_a_schedule(store_url: str) -> None:
    """Several connections (threads here, processes in test_reliability) lock at the same time."""
    setup = open_schedule_store(store_url)
    for index in range(40):
        setup.add_schedule(schedule(f"s{index:02d}", wake_at=100.0))
    stores = [open_schedule_store(store_url) for _ in range(4)]
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(len(stores))

    def lock(index: int) -> None:
        barrier.wait()
        names: list[str] = []
        while True:
            batch = stores[index].lock_due(200.0, f"owner-{index}", 900.0, 3)
            if not batch:
                break
            names += [s.name for s in batch]
        got[f"owner-{index}"] = names

    threads = [threading.Thread(target=lock, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every_lock = [name for names in got.values() for name in names]
    assert sorted(every_lock) == [f"s{index:02d}" for index in range(40)]  # each exactly once
    for opened in [setup, *stores]:
        opened.close()
