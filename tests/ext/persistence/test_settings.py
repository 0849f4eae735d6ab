"""durable() refuses bad settings up front, and a run always gives its lease back."""

from __future__ import annotations

from typing import Any

import pytest

from kaygraph import Graph, Node
from kaygraph.core.exceptions import ConfigurationError
from kaygraph.ext.persistence import durable


def graph() -> Graph:
    return Graph(Node(node_id="only"), name="settings")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": "60"}, r"durable\(ttl=...\) must be a number of seconds >= 0.*'60' \(str\)"),
        ({"ttl": -1}, r"ttl=...\) must be a number of seconds >= 0"),
        ({"ttl": float("nan")}, "ttl"),
        ({"keep_snapshots": -1}, r"durable\(keep_snapshots=...\) must be an int >= 1 or None"),
        ({"keep_snapshots": 2.5}, "keep_snapshots"),
        ({"lease_seconds": 0}, r"durable\(lease_seconds=...\) must be a number of seconds > 0"),
        ({"lease_seconds": None}, "lease_seconds"),
        ({"snapshot_every": 0}, r"snapshot_every=...\) must be an int >= 1"),
        ({"snapshot_every": True}, "snapshot_every"),
    ],
)
def test_bad_settings_fail_when_the_runner_is_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        durable(graph(), "memory://settings", **options)
    assert caught.value.key == next(iter(options))


def test_bad_configured_settings_name_the_configuration_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    durable_module = importlib.import_module("kaygraph.ext.persistence.durable")
    configured = {"ttl": "one day", "keep_snapshots": 10, "serializer": "json"}
    monkeypatch.setattr(durable_module, "setting", configured.__getitem__)
    with pytest.raises(ConfigurationError, match=r"persistence\.ttl must be a number"):
        durable(graph(), "memory://settings")


def test_the_lease_is_released_even_if_the_final_fields_cannot_be_computed(new_store_url: Any) -> None:
    # A fresh store: a named memory store outlives the test, and a second run of "leak" there
    # (the same test run again in one process, as mutmut does) would find it already finished.
    runner = durable(graph(), new_store_url("memory"), ttl=None)
    runner.ttl = "broken"  # type: ignore[assignment]  # as if changed after validation
    with pytest.raises(TypeError):
        runner.run({}, run_id="leak")
    info = runner.get_run("leak")
    assert info.lease_owner is None and info.status == "succeeded"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"ttl": -1},
            "durable(ttl=...) must be a number of seconds >= 0 (0 or None: never), got -1 (int); fix the "
            "value before running the graph",
        ),
        (
            {"lease_seconds": 0},
            "durable(lease_seconds=...) must be a number of seconds > 0, got 0 (int); fix the value before "
            "running the graph",
        ),
        (
            {"keep_snapshots": 0},
            "durable(keep_snapshots=...) must be an int >= 1 or None (no limit), got 0 (int); fix the value "
            "before running the graph",
        ),
        (
            {"snapshot_every": 0},
            "durable(snapshot_every=...) must be an int >= 1, got 0 (int); "
            "fix the value before running the graph",
        ),
    ],
    ids=["ttl", "lease", "keep", "every"],
)
def test_a_bad_setting_says_exactly_what_is_allowed(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        durable(graph(), "memory://settings", **options)
    assert str(caught.value) == message


def test_durable_names_what_it_was_given_instead_of_a_graph_and_a_bad_live_threshold() -> None:
    from kaygraph.core.exceptions import PersistenceError

    with pytest.raises(PersistenceError) as caught:
        durable("not a graph", "memory://settings")  # type: ignore[arg-type]
    assert str(caught.value) == "durable() needs a kaygraph Graph or AsyncGraph, got 'not a graph'"
    with pytest.raises(ConfigurationError) as threshold:
        durable(graph(), "memory://settings", live_threshold=-1)
    assert str(threshold.value).startswith("durable(live_threshold=...) must be a number of seconds >= 0")


def test_the_configured_serializer_is_used_when_none_is_given() -> None:
    from kaygraph.config import get_config

    get_config().configure(persistence={"serializer": "pickle"})
    assert durable(graph(), "memory://settings").serializer.name == "pickle"
    assert durable(graph(), "memory://settings", serializer="json").serializer.name == "json"


def test_open_store_names_a_target_of_the_wrong_type_and_reads_durability_from_the_url(tmp_path: Any) -> None:
    from kaygraph.core.exceptions import PersistenceError
    from kaygraph.ext.persistence import open_store

    with pytest.raises(PersistenceError) as caught:
        open_store(42)  # type: ignore[arg-type]
    assert "got 42 (int)" in str(caught.value)
    store = open_store(f"sqlite:///{tmp_path}/runs.db?durability=full")
    try:
        assert store.durability == "full"  # type: ignore[attr-defined]
    finally:
        store.close()


def test_a_sqlite_store_made_directly_is_normal_durability(tmp_path: Any) -> None:
    from kaygraph.ext.persistence.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "runs.db")
    try:
        assert store.durability == "normal"
    finally:
        store.close()


def test_the_extension_says_which_drivers_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import kaygraph.ext.persistence as persistence

    real = importlib.import_module

    def without_drivers(name: str, *args: Any) -> Any:
        if name in ("redis", "psycopg"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_drivers)
    assert persistence._backends_ready() == (
        "SQLite and memory ready; Redis/PostgreSQL need redis, psycopg: pip install 'kaygraph[persistence]'"
    )
