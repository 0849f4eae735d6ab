"""Scheduler behaviour on every backend, with a fake clock: fires, catch-up, overlap, pause/resume/
remove while running, manual fires, backfills, jitter, crashed fires, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kaygraph.ext.scheduler import Scheduler, SchedulerError, ScheduleStoreError, cron, every
from kaygraph.ext.scheduler.abc import fire_id
from kaygraph.ext.scheduler.errors import ScheduleExistsError, ScheduleNotFoundError


def make(store_url: str, clock: Any, **options: Any) -> Scheduler:
    options.setdefault("runs", f"memory://runs-{uuid.uuid4().hex[:8]}")
    options.setdefault("grace", 5)
    options.setdefault("lease", 30)
    return Scheduler(store_url, clock=clock, **options)


def step(scheduler: Scheduler, clock: Any, seconds: float = 0.0, *, run: bool = True) -> list[Any]:
    """Move the clock, make one pass and (by default) run what was claimed, inline."""
    clock.advance(seconds)
    jobs = scheduler.tick()
    if run:
        return [scheduler.execute(job) for job in jobs]
    return jobs


def drain(scheduler: Scheduler, clock: Any, seconds: float = 0.0) -> list[Any]:
    """:func:`step`, then more passes at the same instant until nothing more starts (a queue)."""
    ran = step(scheduler, clock, seconds)
    while True:
        more = step(scheduler, clock)
        if not more:
            return ran
        ran += more


def statuses(scheduler: Scheduler, name: str) -> list[tuple[str, str]]:
    return [(f.fire_id.split("@")[1], f.status) for f in reversed(scheduler.fires(name, limit=None))]


def test_each_fire_time_runs_once_as_its_durable_run(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), shared={"to": "ops"})
    assert step(scheduler, clock, 30) == []  # not due yet
    [fire] = step(scheduler, clock, 30)
    assert fire.status == "succeeded" and fire.fire_id == fire_id("report", clock.now)
    assert step(scheduler, clock) == []  # the same instant again: nothing new
    other = make(store_url, clock, runs=scheduler._runs_target)  # a replica, same stores
    assert step(other, clock) == []
    assert graphs.executed() == [fire.fire_id]
    from kaygraph.ext.persistence import get_run

    run = get_run(scheduler._runs(), fire.fire_id)  # the fire id is the durable run id
    assert run.status == "succeeded" and run.graph_name == "counting"


def test_two_replicas_ticking_together_split_without_duplicates(store_url, clock, graphs) -> None:
    first = make(store_url, clock)
    second = make(store_url, clock, runs=first._runs_target)
    for index in range(6):
        first.add(f"s{index}", graphs.ref("counting"), every(minutes=1))
    clock.advance(60)
    jobs = first.tick() + second.tick()
    assert len(jobs) == 6 and len({job.fire.fire_id for job in jobs}) == 6
    for job in jobs:
        (first if job.fire.owner == first.owner else second).execute(job)
    assert sorted(graphs.executed()) == sorted(job.fire.fire_id for job in jobs)


@pytest.mark.parametrize(
    ("catchup", "max_age", "runs", "missed"),
    [("latest", None, 1, 9), ("all", None, 10, 0), ("skip", None, 0, 10), ("all", 200, 3, 7)],
)
def test_catchup_after_downtime(store_url, clock, graphs, catchup, max_age, runs, missed) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), catchup=catchup, max_age=max_age)
    clock.advance(600 + 30)  # all schedulers were down for ten fire periods
    ran = drain(scheduler, clock)  # overlap="skip": missed fires run one after another, not all at once
    assert len(ran) == runs and len(graphs.executed()) == runs
    assert scheduler.get("report").missed == missed
    if catchup == "latest":
        assert ran[0].fire_time == clock.now - 30  # the newest missed fire
        assert "10 fire(s)" in ran[0].note and "catchup='latest'" in ran[0].note
    # After catching up, the next fire is on time again.
    assert len(step(scheduler, clock, 30)) == 1


def test_a_slightly_late_fire_is_on_time_within_grace(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock, grace=5)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), catchup="skip")
    assert len(step(scheduler, clock, 64)) == 1  # 4 s late: still runs under catchup="skip"


def test_with_every_worker_busy_due_schedules_wait_in_the_store(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock, max_workers=1, poll_interval=2)
    for name in ("a", "b"):
        scheduler.add(name, graphs.ref("counting"), every(minutes=1))
    [job] = step(scheduler, clock, 60, run=False)  # one worker: one schedule locked and claimed
    assert step(scheduler, clock, run=False) == []
    waiting = "b" if job.fire.schedule == "a" else "a"
    # Not locked, planned or re-planned while there is nowhere to run it...
    assert scheduler.store.get_schedule(waiting).lock_owner is None
    assert scheduler.store.active_fires(waiting) == []
    # ... and the driver sleeps (a finishing fire wakes it) instead of spinning on its due time.
    assert scheduler.next_wake() == clock.now + 2
    scheduler.execute(job)
    assert scheduler.next_wake() <= clock.now
    [second] = step(scheduler, clock)
    assert second.fire_id == fire_id(waiting, clock.now) and second.status == "succeeded"


def test_a_pass_the_store_fails_to_write_is_retried_and_nothing_is_lost(
    store_url, clock, graphs, monkeypatch, caplog
) -> None:
    scheduler = make(store_url, clock, poll_interval=2)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1))
    store = scheduler.store
    write_pass = store.write_pass

    def broken(owner, writes):  # type: ignore[no-untyped-def]
        raise ScheduleStoreError("the database went away mid-pass")

    monkeypatch.setattr(store, "write_pass", broken)
    with caplog.at_level("ERROR", logger="kaygraph.scheduler"):
        assert step(scheduler, clock, 60) == []
    assert "schedule(s) 'report' could not be processed; trying again in 2s" in caplog.text
    got = store.get_schedule("report")
    assert got.lock_owner is None and got.wake_at == clock.now + 2  # released, due again soon
    monkeypatch.setattr(store, "write_pass", write_pass)
    [fire] = step(scheduler, clock, 2)
    assert fire.fire_id == fire_id("report", clock.now - 2) and fire.status == "succeeded"


def test_overlap_skip_records_the_skipped_fire(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), overlap="skip")
    [running] = step(scheduler, clock, 60, run=False)  # claimed, still running
    assert step(scheduler, clock, 60) == []
    assert statuses(scheduler, "report")[-1][1] == "skipped"
    assert scheduler.get("report").skipped == 1
    scheduler.execute(running)
    assert len(step(scheduler, clock, 60)) == 1  # the next one runs again


def test_overlap_queue_runs_after_the_previous_one(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), overlap="queue")
    [running] = step(scheduler, clock, 60, run=False)
    assert step(scheduler, clock, 60) == []  # queued behind the running fire
    assert [s for _, s in statuses(scheduler, "report")] == ["running", "pending"]
    scheduler.execute(running)  # ends: the queued fire is due at once
    [queued] = step(scheduler, clock, 1)
    assert queued.fire_time == clock.now - 1 and queued.status == "succeeded"


def test_overlap_allow_runs_side_by_side(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), overlap="allow")
    first = step(scheduler, clock, 60, run=False)
    second = step(scheduler, clock, 60, run=False)
    assert len(first) == len(second) == 1
    assert [s for _, s in statuses(scheduler, "report")] == ["running", "running"]


def test_an_ended_fire_is_planned_again_and_drops_its_lease_owner(store_url, clock, graphs) -> None:
    from kaygraph.ext.persistence import leases

    owners = len(leases._local_owners)
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), overlap="allow")
    scheduler.add("queued", graphs.ref("counting"), every(minutes=1), overlap="queue")
    assert [f.status for f in step(scheduler, clock, 60)] == ["succeeded", "succeeded"]
    # Passed again by the next tick (after any fires due then started), so neither wakes at its
    # ended fire's lease end (30 s) for nothing.
    assert scheduler.next_wake() <= clock.now
    assert step(scheduler, clock) == []
    assert scheduler.store.next_wake() == clock.now + 60 and scheduler.next_wake() > clock.now
    assert len(leases._local_owners) == owners  # every run's lease owner is dropped at its end


def test_overlap_cancel_cancels_the_running_fire(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), overlap="cancel")
    [old] = step(scheduler, clock, 60, run=False)
    [new] = step(scheduler, clock, 60, run=False)
    assert scheduler.store.get_fire(old.fire.fire_id).cancel_requested
    scheduler._next_renew = 0  # the next pass renews leases and hears of the cancellation
    step(scheduler, clock, 1, run=False)
    assert old.token.cancelled and "overlap='cancel'" in old.token.reason
    assert not new.token.cancelled


def test_pause_resume_remove_while_running(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1))
    [running] = step(scheduler, clock, 60, run=False)
    scheduler.pause("report")
    assert step(scheduler, clock, 300) == []  # paused: no fires
    assert scheduler.execute(running).status == "succeeded"  # the running one finished normally
    scheduler.resume("report")
    assert [f.fire_time for f in step(scheduler, clock, 60)] == [clock.now]  # no catch-up of the pause
    [running] = step(scheduler, clock, 60, run=False)
    scheduler.remove("report")
    assert scheduler.execute(running).status == "succeeded"  # history stays
    assert step(scheduler, clock, 600) == []
    with pytest.raises(ScheduleNotFoundError, match="no schedule named 'report'"):
        scheduler.get("report")
    assert len(graphs.executed()) == 3


def test_trigger_and_backfill(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), cron("0 * * * *"), overlap="allow")
    manual = scheduler.trigger("report")
    assert manual.kind == "manual"
    assert [f.fire_id for f in step(scheduler, clock)] == [manual.fire_id]
    start = clock.now - 6 * 3600
    fires = scheduler.backfill("report", start, clock.now)
    assert len(fires) == 6
    assert len(scheduler.backfill("report", start, clock.now)) == 6  # again: the same fires, no new ones
    ran = step(scheduler, clock, 1)
    assert sorted(f.fire_id for f in ran) == sorted(f.fire_id for f in fires)
    assert len(graphs.executed()) == 7


def test_jitter_is_fixed_per_schedule_and_fire(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), jitter=20)
    first = make(store_url, clock).get("report")
    assert 0 <= first.wake_at - first.next_fire_at < 20
    from kaygraph.ext.scheduler.engine import jitter_for

    delays = {jitter_for("report", 60.0 * n, 20) for n in range(50)}
    assert len(delays) > 40 and all(0 <= d < 20 for d in delays)
    assert jitter_for("report", 120.0, 20) == jitter_for("report", 120.0, 20)
    clock.advance(60)
    due = scheduler.store.get_schedule("report").wake_at
    assert step(scheduler, clock, due - clock.now - 0.01) == []
    [fired] = step(scheduler, clock, 0.02)
    assert fired.due_at == pytest.approx(due)


def test_a_crashed_fire_is_taken_over_and_never_runs_twice(store_url, clock, graphs) -> None:
    dead = make(store_url, clock, lease=10)
    dead.add("report", graphs.ref("counting"), every(minutes=1))
    [claimed] = step(dead, clock, 60, run=False)  # then its process dies
    alive = make(store_url, clock, lease=10, runs=dead._runs_target)
    assert step(alive, clock, 5) == []  # its lease still holds
    [taken] = step(alive, clock, 6)
    assert taken.fire_id == claimed.fire.fire_id and taken.attempts == 2 and taken.status == "succeeded"
    # Died after its run succeeded but before recording it: the takeover finds the run finished.
    [again] = step(alive, clock, 49, run=False)
    alive.execute(again)
    alive.store.update_fire(again.fire.fire_id, {"status": "running", "owner": "ghost", "lease_until": 0.0})
    [retaken] = step(alive, clock, 1)
    assert retaken.status == "succeeded"
    assert graphs.executed() == [claimed.fire.fire_id, again.fire.fire_id]


def test_add_refuses_bad_input(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    with pytest.raises(SchedulerError, match=r"schedule 'report': .*'nope'"):
        scheduler.add("report", graphs.ref("nope"), every(minutes=1))
    with pytest.raises(SchedulerError, match=r"no module named 'no_such_module_here'"):
        scheduler.add("report", "no_such_module_here:graph", every(minutes=1))
    with pytest.raises(SchedulerError, match=r"'package\.module:attr'"):
        scheduler.add("report", "just-a-name", every(minutes=1))
    with pytest.raises(ValueError, match="overlap='sometimes' is not a policy"):
        scheduler.add("report", graphs.ref("counting"), every(minutes=1), overlap="sometimes")
    with pytest.raises(SchedulerError, match="JSON values"):
        scheduler.add("report", graphs.ref("counting"), every(minutes=1), shared={"when": object()})
    scheduler.add("report", graphs.ref("counting"), every(minutes=1))
    with pytest.raises(ScheduleExistsError, match="replace=True"):
        scheduler.add("report", graphs.ref("counting"), every(minutes=2))
    with pytest.raises(ScheduleNotFoundError, match="Did you mean 'report'"):
        scheduler.pause("reprot")
    assert scheduler.list()[0].trigger == every(minutes=1).to_dict()


def test_a_graph_broken_after_add_fails_that_fire_and_the_scheduler_goes_on(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("failing", graphs.ref("failing"), every(minutes=1))
    [failed] = step(scheduler, clock, 60)
    assert failed.status == "failed" and "RuntimeError: the report service is down" in failed.error
    scheduler.add("report", graphs.ref("counting"), every(minutes=1))
    graphs.break_module()  # a deploy broke the module after the schedules were added
    ran = {fire.schedule: fire for fire in step(scheduler, clock, 60)}
    assert ran["report"].status == "failed" and "deploy 42 broke this module" in ran["report"].error
    stored = scheduler.store.get_fire(ran["report"].fire_id)
    assert stored.status == "failed" and "deploy 42" in stored.error
    assert {f.schedule for f in step(scheduler, clock, 60)} == {"report", "failing"}  # it goes on


def test_fires_carry_their_identity_in_the_graph_params(store_url, clock, graphs) -> None:
    scheduler = make(store_url, clock)
    scheduler.add("report", graphs.ref("counting"), every(minutes=1), params={"region": "eu"})
    [fire] = step(scheduler, clock, 60)
    from kaygraph.ext.persistence import steps

    assert graphs.executed() == [fire.fire_id]
    assert steps(scheduler._runs(), fire.fire_id)  # the durable run has its history


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://kay:s3cret@127.0.0.1:1/nowhere", "postgresql://kay:***@127.0.0.1:1/nowhere"),
        ("redis://:s3cret@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),
    ],
)
def test_unreachable_store_url_is_named_without_its_password(url, shown) -> None:
    with pytest.raises(ScheduleStoreError) as caught:
        Scheduler(url)
    assert shown in str(caught.value) and "s3cret" not in str(caught.value)
    assert "check that the server runs" in str(caught.value)


def test_unknown_store_url() -> None:
    with pytest.raises(ScheduleStoreError, match="unknown schedule store URL 'mongo://x'"):
        Scheduler("mongo://x")


def test_store_level_helpers_for_tools(store_url, clock, graphs) -> None:
    from kaygraph.ext import scheduler as module
    from kaygraph.ext.scheduler import open_schedule_store

    make(store_url, clock).add("report", graphs.ref("counting"), every(minutes=1))
    store = open_schedule_store(store_url)
    module.pause(store, "report")
    assert store.get_schedule("report").paused
    module.resume(store, "report")
    assert not store.get_schedule("report").paused
    run_id = module.trigger(store, "report")
    assert store.get_fire(run_id).kind == "manual"
