"""The read API the dashboard uses, on every store: pages, counts, one run, steps, state at a step,
the event log, change polling, forks, cancellation and the graph reference."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import kaygraph
from kaygraph import Graph, Node
from kaygraph.core.exceptions import PersistenceError, RunCancelled, RunNotFoundError
from kaygraph.ext.persistence import (
    DELETE,
    changes,
    count_runs,
    durable,
    events,
    fork_run,
    get_run,
    iter_steps,
    runs_page,
    state_at,
    steps,
    steps_page,
)


class Count(Node):
    """Adds one to ``shared['n']``, appends to ``shared['log']``; loops until ``n == limit``."""

    def __init__(self, limit: int, node_id: str = "count", probe: Any = None) -> None:
        super().__init__(node_id=node_id)
        self.limit = limit
        self.probe = probe

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        if self.probe is not None:
            self.probe(shared)
        shared["n"] = shared.get("n", 0) + 1
        shared.setdefault("log", []).append(shared["n"])
        return "again" if shared["n"] < self.limit else "done"


def counter(limit: int, *, name: str = "counter", probe: Any = None) -> Graph:
    count = Count(limit, probe=probe)
    count - "again" >> count
    count - "done" >> Node(node_id="end")
    return Graph(count, name=name)


def test_runs_page_is_a_keyset_pagination_newest_first_with_filters(store: Any) -> None:
    for index in range(7):
        durable(counter(1, name="even" if index % 2 == 0 else "odd"), store).run({}, run_id=f"run-{index}")
    first = runs_page(store, limit=3)
    durable(counter(1, name="odd"), store).run({}, run_id="run-7")  # a new run does not shift pages
    seen, cursor = [info.run_id for info in first.runs], first.next_cursor
    while cursor is not None:
        page = runs_page(store, limit=3, cursor=cursor)
        assert len(page.runs) <= 3
        seen += [info.run_id for info in page.runs]
        cursor = page.next_cursor
    assert seen == [f"run-{index}" for index in reversed(range(7))]
    odd = runs_page(store, graph_name="odd", limit=10)
    assert [info.run_id for info in odd.runs] == ["run-7", "run-5", "run-3", "run-1"]
    assert odd.next_cursor is None
    assert runs_page(store, status="failed").runs == []
    counts = count_runs(store)
    assert counts["succeeded"] == 8 and counts["total"] == 8 and counts["cancelled"] == 0
    assert count_runs(store, graph_name="even")["succeeded"] == 4
    with pytest.raises(PersistenceError, match="invalid runs cursor"):
        runs_page(store, cursor="garbage")
    with pytest.raises(PersistenceError, match="unknown run status 'done'"):
        runs_page(store, status="done")


def test_a_running_run_shows_its_true_step_count(store: Any) -> None:
    seen: list[int] = []

    def probe(shared: Any) -> None:
        if shared.get("n") == 3:  # the row itself is refreshed at most once a second
            seen.append(get_run(store, "live").steps)
            seen.append(runs_page(store).runs[0].steps)

    durable(counter(5, probe=probe), store).run({}, run_id="live")
    assert seen == [3, 3]
    assert get_run(store, "live").steps == 6  # five counts and the end node


def test_steps_page_state_at_and_iter_steps_agree(store: Any) -> None:
    runner = durable(counter(30), store, snapshot_every=7)
    runner.run({}, run_id="walk")
    history = steps(store, "walk")
    streamed = list(iter_steps(store, "walk"))
    assert [entry.seq for entry in streamed] == [entry.seq for entry in history]
    paged, cursor = [], None
    while True:
        page = steps_page(store, "walk", after=cursor, limit=4)
        assert all(entry.state is None for entry in page.steps)
        paged += page.steps
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert [entry.seq for entry in paged] == [entry.seq for entry in history]
    for entry in history:
        at = state_at(store, "walk", seq=entry.seq)
        assert at.state == entry.state and at.step == entry.step
    assert state_at(store, "walk", step=10).state["n"] == 10
    assert state_at(store, "walk").state["log"] == list(range(1, 31))
    node_steps = [entry for entry in paged if entry.kind == "step"]
    assert node_steps[0].node_id == "count" and node_steps[0].duration is not None
    assert node_steps[0].attempts == 1 and node_steps[0].started_at <= node_steps[0].timestamp


class Flaky(Node):
    """Fails its first ``failures`` attempts of exec, then succeeds."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(node_id="flaky", **kwargs)
        self.failures = failures

    def exec(self, prep_res: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("flaky Bearer tok-12345678")
        return "ok"


def test_the_event_log_has_starts_ends_retries_errors_and_status_changes(store: Any) -> None:
    seen_during: list[list[str]] = []

    class Watch(Node):
        def exec(self, prep_res: Any) -> Any:
            log = events(store, "watched")
            seen_during.append([event.kind for event in log[-1:]] + [str(log[-1].node_id)])

    watch, flaky = Watch(node_id="watch"), Flaky(1, max_retries=2)
    watch >> flaky
    durable(Graph(watch, name="watched"), store).run({}, run_id="watched")
    # The node start is in the log while the node runs: the dashboard shows it as current.
    assert seen_during == [["node_start", "watch"]]
    log = events(store, "watched")
    kinds = [(event.kind, event.node_id) for event in log]
    assert kinds == [
        ("status", None),
        ("node_start", "watch"),
        ("node_end", "watch"),
        ("node_start", "flaky"),
        ("retry", "flaky"),
        ("node_end", "flaky"),
        ("status", None),
    ]
    assert [event.status for event in log if event.kind == "status"] == ["running", "succeeded"]
    assert [event.seq for event in log] == sorted({event.seq for event in log})
    core = [event.core_seq for event in log if event.core_seq is not None]
    assert core == sorted(core) and len(core) >= 4
    retry = next(event for event in log if event.kind == "retry")
    assert retry.attempt == 1 and "flaky" in (retry.error or "")
    assert next(event for event in log if event.kind == "node_end" and event.node_id == "flaky").attempt == 2
    assert [event.seq for event in events(store, "watched", after=log[2].seq)] == [e.seq for e in log[3:]]
    assert events(store, "watched", after=log[-1].seq) == []

    failing = Flaky(5)
    with pytest.raises(RuntimeError):
        durable(Graph(failing, name="failing"), store).run({}, run_id="failing")
    log = events(store, "failing")
    assert [event.kind for event in log][-2:] == ["node_error", "status"]
    assert log[-1].status == "failed" and "RuntimeError" in (log[-1].error or "")
    info = get_run(store, "failing")
    assert info.status == "failed" and "Traceback" in (info.traceback or "") and "exec" in info.traceback
    with pytest.raises(RunNotFoundError):
        events(store, "nothing-here")


def test_changes_polls_every_changed_run_with_one_query(store: Any) -> None:
    first = changes(store)
    assert first.runs == []
    durable(counter(2), store).run({}, run_id="one")
    polled = changes(store, first.cursor)
    assert [info.run_id for info in polled.runs] == ["one"]
    assert changes(store, polled.cursor).runs == []
    time.sleep(0.01)
    durable(counter(2), store).run({}, run_id="two")
    assert [info.run_id for info in changes(store, polled.cursor).runs] == ["two"]


def test_changes_in_pages_misses_no_run_updated_at_the_same_instant_as_a_page_end(store: Any) -> None:
    for index in range(7):
        durable(counter(1), store).run({}, run_id=f"r{index}")
    # Runs 1-3 and 4-6 each share one updated_at: page ends fall inside both groups.
    for index in range(7):
        store.update_run(f"r{index}", {"updated_at": 1000.0 + (index + 2) // 3})
    seen: list[str] = []
    cursor = 0.0
    for _ in range(10):
        page = changes(store, cursor, limit=2)
        if not page.runs:
            break
        seen += [info.run_id for info in page.runs]
        cursor = page.cursor
    assert sorted(seen) == [f"r{index}" for index in range(7)]  # each exactly once


def test_fork_from_a_step_with_a_patch_records_its_parent(store: Any) -> None:
    runner = durable(counter(6), store)
    runner.run({"keep": 1, "drop": 2}, run_id="parent")
    parent_steps = [entry for entry in steps(store, "parent") if entry.kind == "step"]
    fork_point = parent_steps[2]  # after n == 3
    forked = fork_run(store, "parent", seq=fork_point.seq, patch={"n": 4, "drop": DELETE}, new_run_id="child")
    assert forked.status == "pending" and forked.parent_run_id == "parent"
    assert forked.parent_seq == fork_point.seq
    info = get_run(store, "child")
    assert (info.status, info.parent_run_id, info.parent_seq) == ("pending", "parent", fork_point.seq)
    assert state_at(store, "child").state == {"keep": 1, "n": 4, "log": [1, 2, 3]}
    result = runner.resume("child")
    assert result.status == "succeeded"
    assert result.shared["log"] == [1, 2, 3, 5, 6]  # 4 came from the patch: only what was left ran
    assert get_run(store, "parent").status == "succeeded"  # the parent is untouched
    by_step = runner.fork("parent", step=2)
    assert state_at(store, by_step.run_id).state["n"] == 2


def test_a_cancelled_run_is_recorded_cancelled_and_resumes(store: Any) -> None:
    token = kaygraph.CancelToken()

    def probe(shared: Any) -> None:
        if shared.get("n") == 3:
            token.cancel("operator asked")

    runner = durable(counter(6, probe=probe), store)
    with pytest.raises(RunCancelled):
        runner.run({}, run_id="stopped", cancel=token)
    info = get_run(store, "stopped")
    assert info.status == "cancelled" and "operator asked" in (info.error or "")
    assert events(store, "stopped")[-1].status == "cancelled"
    assert count_runs(store)["cancelled"] == 1
    result = durable(counter(6), store).resume("stopped")
    assert result.status == "succeeded" and result.shared["log"] == [1, 2, 3, 4, 5, 6]


def test_durable_runs_record_the_graph_reference_and_pass_listeners_through(store: Any) -> None:
    graph = kaygraph.load_graph("tests.ext.persistence.test_reads:referenced_graph")
    seen: list[str] = []

    class Listener(kaygraph.RunListener):
        def on_node_end(self, *, node_id: str, **kwargs: Any) -> None:
            seen.append(node_id)

    durable(graph, store).run({}, run_id="by-ref", listeners=[Listener()])
    assert get_run(store, "by-ref").graph_ref == "tests.ext.persistence.test_reads:referenced_graph"
    assert seen == ["count", "count", "end"]
    durable(counter(1), store).run({}, run_id="in-code")
    assert get_run(store, "in-code").graph_ref is None


def referenced_graph() -> Graph:
    """A graph factory for ``kaygraph.load_graph`` (see the test above)."""
    return counter(2)


class Collect:
    """A test executor: runs each submitted call inline and records it; calls after the first
    ``finish`` ones stay pending (still running when the driver dies)."""

    def __init__(self, finish: int | None = None) -> None:
        self.calls = 0
        self.finish = finish
        self.lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any) -> Any:
        from concurrent.futures import Future

        with self.lock:
            self.calls += 1
            pending = self.finish is not None and self.calls > self.finish
        future: Future[Any] = Future()
        if pending:
            return future
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def test_batch_items_are_checkpointed_through_an_executor_and_only_unfinished_ones_rerun(store: Any) -> None:
    ran: list[int] = []

    class Items(kaygraph.BatchNode):
        def prep(self, shared: Any) -> Any:
            return list(range(6))

        def exec(self, item: Any) -> Any:
            ran.append(item)
            return item * 10

        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["results"] = exec_res
            return None

    class DriverCrash(kaygraph.RunListener):
        """Kills the driver after the third item result came back (and was checkpointed)."""

        def __init__(self) -> None:
            self.seen = 0

        def on_batch_item_end(self, **kwargs: Any) -> None:
            self.seen += 1
            if self.seen == 3:
                raise KeyboardInterrupt("the driver process dies")

    executor = Collect(finish=3)
    runner = durable(Graph(Items(node_id="items"), name="batch"), store)
    with pytest.raises(KeyboardInterrupt):
        runner.run({}, run_id="batch", executor=executor, listeners=[DriverCrash()])
    assert executor.calls >= 3
    executor.finish = None
    # Each item was checkpointed as its result came back through the executor.
    finished = {event.index for event in events(store, "batch") if event.kind == "item_end"}
    assert len(finished) == 3
    before = len(ran)
    result = runner.resume("batch", executor=executor)
    assert result.shared["results"] == [0, 10, 20, 30, 40, 50]
    assert sorted(ran[before:]) == sorted(set(range(6)) - finished)  # only unfinished items reran


def test_wait_for_change_wakes_when_a_run_changes(store: Any) -> None:
    from kaygraph.ext.persistence import wait_for_change

    durable(counter(1), store).run({}, run_id="before")  # the listener connects on first wait
    wait_for_change(store, 0.05)
    woke: list[float] = []

    def waiter() -> None:
        began = time.monotonic()
        if wait_for_change(store, 5.0):
            woke.append(time.monotonic() - began)

    thread = threading.Thread(target=waiter)
    if store.backend == "sqlite":  # no push: it waits the timeout, then the caller polls changes()
        began = time.monotonic()
        assert wait_for_change(store, 0.2) and time.monotonic() - began >= 0.2
        return
    if store.backend == "redis" or store.backend == "postgres":
        wait_for_change(store, 0.05)  # subscribed now
    thread.start()
    time.sleep(0.2)
    durable(counter(1), store).run({}, run_id="after")
    thread.join(10)
    assert woke and woke[0] < 4.0


def test_another_process_can_request_a_cancel_and_the_run_ends_cancelled(store: Any) -> None:
    from kaygraph.ext.persistence import request_cancel

    class Slow(Node):
        delay = 0.02

        def exec(self, prep_res: Any) -> Any:
            time.sleep(Slow.delay)

        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["n"] = shared.get("n", 0) + 1
            if shared["n"] == 2:  # as if a dashboard in another process asked
                assert request_cancel(store, "remote", "stop from the dashboard")
            return "again" if shared["n"] < 150 else "done"

    slow = Slow(node_id="slow")
    slow - "again" >> slow
    slow - "done" >> Node(node_id="end")
    with pytest.raises(RunCancelled, match="stop from the dashboard"):
        durable(Graph(slow, name="remote"), store).run({}, run_id="remote")
    info = get_run(store, "remote")
    assert info.status == "cancelled" and info.steps < 100
    assert request_cancel(store, "remote") is False  # not running any more
    Slow.delay = 0.0
    slow_again = Slow(node_id="slow")
    slow_again - "again" >> slow_again
    slow_again - "done" >> Node(node_id="end")
    finished = durable(Graph(slow_again, name="remote"), store).resume("remote")
    assert finished.status == "succeeded" and get_run(store, "remote").cancel_requested is None


def test_a_pickle_run_forks_through_its_runner_at_a_record_keeping_the_step_count(store: Any) -> None:
    runner = durable(counter(5), store, serializer="pickle")
    runner.run({}, run_id="pickled")
    recorded = [entry for entry in steps(store, "pickled", serializer="pickle") if entry.kind == "step"]
    middle = recorded[2]

    forked = runner.fork("pickled", seq=middle.seq, new_run_id="pickled-fork")

    assert (forked.parent_seq, forked.steps, forked.serializer) == (middle.seq, 3, "pickle")
    stored = get_run(store, "pickled-fork")
    assert (stored.steps, stored.status) == (3, "pending")
    assert state_at(store, "pickled-fork", serializer="pickle").state == {"n": 3, "log": [1, 2, 3]}
    assert [entry.kind for entry in steps(store, "pickled-fork", serializer="pickle")] == ["start"]
    finished = runner.resume("pickled-fork")
    assert finished.shared["log"] == [1, 2, 3, 4, 5]
    assert get_run(store, "pickled-fork").steps == 6  # the three before the fork, three after


def test_records_are_read_a_page_at_a_time_each_once(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    history_module = importlib.import_module("kaygraph.ext.persistence.history")
    durable(counter(6), store).run({}, run_id="paged")
    whole = [entry.seq for entry in steps(store, "paged")]
    monkeypatch.setattr(history_module, "PAGE", 2)
    assert [entry.seq for entry in steps(store, "paged")] == whole
    assert len(whole) == len(set(whole)) > 4


def test_an_empty_cancel_reason_is_recorded_as_cancel_requested(store: Any) -> None:
    from kaygraph.ext.persistence import request_cancel

    seen: list[Any] = []

    def ask(shared: Any) -> None:
        if not seen:
            assert request_cancel(store, "quiet", "")
            seen.append(get_run(store, "quiet").cancel_requested)

    try:  # whether the writer notices before its 3 steps end depends on its refresh clock
        durable(counter(3, probe=ask), store).run({}, run_id="quiet")
    except RunCancelled as cancelled:
        assert "cancel requested" in str(cancelled)
    assert seen == ["cancel requested"]


def test_reading_a_store_that_does_not_exist_yet_finds_nothing(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/never.db"
    page = runs_page(url)
    assert (page.runs, page.next_cursor) == ([], None)
    with pytest.raises(RunNotFoundError) as caught:
        events(url, "r1")
    assert str(caught.value) == (
        "no run 'r1' in the store (it does not exist yet): it never started there, was deleted, or "
        "expired (persistence.ttl)"
    )
    assert not (tmp_path / "never.db").exists()


def test_where_a_process_start_cannot_be_read_a_live_pid_keeps_its_lease(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import os
    import socket

    leases = importlib.import_module("kaygraph.ext.persistence.leases")
    durable(counter(1), store).run({}, run_id="held")
    info = get_run(store, "held")
    info.lease_owner = f"{socket.gethostname()}:{os.getppid()}:12345:token"  # the parent is alive
    monkeypatch.setattr(leases, "_process_start", lambda pid: "")  # as without /proc
    assert leases.lease_is_live(info)


def test_step_entries_are_running_until_the_end_entry_and_a_fork_by_step_counts_steps(store: Any) -> None:
    runner = durable(counter(4), store)
    runner.run({}, run_id="stepped")
    entries = steps(store, "stepped")
    assert {entry.status for entry in entries if entry.kind != "end"} == {"running"}
    assert entries[-1].status == "succeeded"
    forked = runner.fork("stepped", step=2, new_run_id="stepped-fork")
    assert forked.steps == 2
    assert state_at(store, "stepped-fork").state == {"n": 2, "log": [1, 2]}


def test_changes_without_a_limit_returns_every_changed_run(store: Any) -> None:
    from kaygraph.ext.persistence import changes

    for index in range(3):
        durable(counter(1), store).run({}, run_id=f"changed-{index}")
    found = changes(store, 0.0, limit=None)
    assert sorted(info.run_id for info in found.runs) == ["changed-0", "changed-1", "changed-2"]


def test_a_failed_node_is_an_event_with_its_error_attempt_and_the_core_seq(store: Any) -> None:
    class Fail(Node):
        def exec(self, prep_res: Any) -> Any:
            raise RuntimeError("planned")

    with pytest.raises(RuntimeError):
        durable(Graph(Fail(node_id="boom"), name="failing"), store).run({}, run_id="failing")
    found = [
        (event.kind, event.node_id, event.error, event.attempt, event.core_seq)
        for event in events(store, "failing")
    ]
    assert found[1:3] == [
        ("node_start", "boom", None, None, 1),
        ("node_error", "boom", "RuntimeError: planned", 1, 2),
    ]


def test_a_fork_of_a_finished_run_resumes_to_the_action_the_run_ended_with(store: Any) -> None:
    class Bye(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            return "bye"

    first = Node(node_id="first")
    first >> Bye(node_id="bye")
    for every in (100, 1):  # the last step read from a step record, then from a snapshot
        runner = durable(Graph(first, name="ends"), store, snapshot_every=every)
        assert runner.run({}, run_id=f"ended-{every}").action == "bye"
        for new_run_id, options in ((f"latest-{every}", {}), (f"step-{every}", {"step": 2})):
            runner.fork(f"ended-{every}", new_run_id=new_run_id, **options)
            resumed = runner.resume(new_run_id)
            assert (resumed.status, resumed.action) == ("succeeded", "bye"), new_run_id


def test_pages_of_steps_and_runs_end_exactly_and_filter_by_time(store: Any) -> None:
    durable(counter(3), store).run({}, run_id="paged-steps")
    every = steps(store, "paged-steps")
    whole = steps_page(store, "paged-steps", limit=len(every))
    assert (len(whole.steps), whole.next_cursor) == (len(every), None)  # nothing after a full page
    first = steps_page(store, "paged-steps", limit=2)
    rest = steps_page(store, "paged-steps", after=first.next_cursor, limit=100)
    assert [entry.seq for entry in first.steps + rest.steps] == [entry.seq for entry in every]
    with pytest.raises(PersistenceError, match="runs_page limit must be an int >= 1, got 0"):
        runs_page(store, limit=0)
    future = time.time() + 3600
    assert runs_page(store, since=future).runs == [] and count_runs(store, since=future)["succeeded"] == 0
    assert [info.run_id for info in runs_page(store, since=0.0).runs] == ["paged-steps"]
    assert count_runs(store, since=0.0)["succeeded"] == 1


def test_purge_counts_every_expired_run(store: Any) -> None:
    for index in range(3):
        durable(counter(1), store, ttl=60).run({}, run_id=f"short-{index}")
    assert len(store.list_runs(limit=2)) == 2
    assert store.purge_expired(now=time.time() + 3600) == 3
    assert list_runs_of(store) == []


def list_runs_of(store: Any) -> list[str]:
    return [info.run_id for info in store.list_runs()]


def test_a_resumed_run_lists_its_resume_entry(store: Any) -> None:
    failures = [1]

    class Flaky(Node):
        def exec(self, prep_res: Any) -> Any:
            if failures:
                failures.pop()
                raise RuntimeError("first run fails")

    runner = durable(Graph(Flaky(node_id="flaky"), name="flaky"), store)
    with pytest.raises(RuntimeError):
        runner.run({}, run_id="again")
    runner.resume("again")
    assert [entry.kind for entry in steps(store, "again")] == ["start", "end", "resume", "step", "end"]
