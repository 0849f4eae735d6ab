"""Node lifecycle, retries, fallback, hooks and resources."""

from __future__ import annotations

import time
import warnings

import pytest

from kaygraph import BaseNode, Graph, GraphDefinitionError, Node


class Double(Node):
    def prep(self, shared):
        return shared["value"]

    def exec(self, value):
        return value * 2

    def post(self, shared, prep_res, exec_res):
        shared["doubled"] = exec_res
        return "done"


def test_lifecycle_runs_prep_exec_post_and_returns_the_action():
    shared = {"value": 21}
    assert Double().run(shared) == "done"
    assert shared == {"value": 21, "doubled": 42}


def test_run_alone_warns_that_successors_are_not_followed():
    node = Double()
    node >> Double()
    with pytest.warns(UserWarning, match="Node won't run successors. Use Graph."):
        node.run({"value": 1})


class Flaky(Node):
    def __init__(self, failures, **kwargs):
        super().__init__(**kwargs)
        self.failures = failures
        self.attempts_seen = []

    def exec(self, prep_res):
        self.attempts_seen.append(self.cur_retry)
        if len(self.attempts_seen) <= self.failures:
            raise ConnectionError(f"attempt {self.cur_retry} failed")
        return "ok"


def test_exec_is_retried_until_it_succeeds_and_cur_retry_counts_attempts():
    node = Flaky(failures=2, max_retries=3)
    assert node._exec(None) == "ok"
    assert node.attempts_seen == [0, 1, 2]


def test_last_failure_goes_to_exec_fallback_whose_value_is_used():
    class WithFallback(Flaky):
        def exec_fallback(self, prep_res, exc):
            return f"fallback after {exc}"

    node = WithFallback(failures=5, max_retries=2)
    assert node._exec(None) == "fallback after attempt 1 failed"


def test_default_fallback_reraises_the_original_exception():
    node = Flaky(failures=5, max_retries=2)
    with pytest.raises(ConnectionError, match="attempt 1 failed"):
        node._exec(None)


def test_wait_sleeps_between_attempts_but_not_after_the_last(monkeypatch):
    sleeps = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    node = Flaky(failures=5, max_retries=3, wait=0.25)
    with pytest.raises(ConnectionError):
        node._exec(None)
    assert sleeps == [0.25, 0.25]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_retries": 0}, "max_retries must be an int >= 1"),
        ({"max_retries": "3"}, "max_retries must be an int >= 1"),
        ({"wait": -1}, "wait must be a number of seconds >= 0"),
    ],
)
def test_bad_retry_settings_are_rejected_with_the_value(kwargs, fragment):
    with pytest.raises(GraphDefinitionError, match=fragment) as info:
        Node(**kwargs)
    assert "Node" in str(info.value)


def test_hooks_run_around_the_lifecycle_in_order():
    calls = []

    class Hooked(Node):
        def before_prep(self, shared):
            calls.append("before_prep")

        def prep(self, shared):
            calls.append("prep")

        def exec(self, prep_res):
            calls.append("exec")
            return 1

        def after_exec(self, shared, prep_res, exec_res):
            calls.append(("after_exec", exec_res))

        def post(self, shared, prep_res, exec_res):
            calls.append("post")

    Graph(start=Hooked()).run({})
    assert calls == ["before_prep", "prep", "exec", ("after_exec", 1), "post"]


def test_on_error_sees_the_failure_and_the_error_still_propagates():
    seen = []

    class Failing(Node):
        def exec(self, prep_res):
            raise KeyError("missing")

        def on_error(self, shared, error):
            seen.append((shared["id"], type(error)))

    with pytest.raises(KeyError):
        Graph(start=Failing()).run({"id": 7})
    assert seen == [(7, KeyError)]


def test_node_is_a_context_manager_for_its_resources():
    events = []

    class Client(Node):
        def setup_resources(self):
            events.append("open")

        def cleanup_resources(self):
            events.append("close")

    with Client() as client:
        assert isinstance(client, Client)
        events.append("use")
    assert events == ["open", "use", "close"]


def test_base_node_without_retries_runs_exec_once():
    class Once(BaseNode):
        def exec(self, prep_res):
            return "x"

        def post(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Once().run(shared)
    assert shared == {"out": "x"}
