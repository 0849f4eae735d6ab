"""Every bad input a clear error naming the culprit, on every store; nothing else is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaygraph import Graph, Node
from kaygraph.core.exceptions import CheckpointCorruptError, PersistenceError
from kaygraph.ext.persistence import durable, get_run, list_runs, open_store, runs_page, steps

BAD_RUN_IDS = [
    pytest.param("", id="empty"),
    pytest.param("bad\udcffid", id="lone-surrogate"),
    pytest.param("nul\x00id", id="nul"),
    pytest.param("x" * 1_000_000, id="one-megabyte"),
    pytest.param(42, id="int"),
    pytest.param("has space", id="space"),
    pytest.param("../escape", id="slash"),
]


def one_node(name: str = "g") -> Graph:
    return Graph(Node(node_id="only"), name=name)


@pytest.mark.parametrize("run_id", BAD_RUN_IDS)
def test_run_ids_are_validated_up_front_the_same_on_every_store(store: Any, run_id: Any) -> None:
    runner = durable(one_node(), store)
    for attempt in (
        lambda: runner.run({}, run_id=run_id),
        lambda: runner.resume(run_id),
        lambda: get_run(store, run_id),
        lambda: runner.delete_run(run_id),
        lambda: steps(store, run_id),
    ):
        with pytest.raises(PersistenceError, match="run id") as caught:
            attempt()
        message = str(caught.value)
        assert "letters, digits" in message and len(message) < 400
    assert store.list_runs() == []  # nothing was stored, nothing is stuck in `running`


def test_good_run_ids_of_every_allowed_character_work(store: Any) -> None:
    run_id = "Invoice-42_v1.2:retry@host+x=y"
    assert durable(one_node(), store).run({}, run_id=run_id).status == "succeeded"
    assert get_run(store, run_id).run_id == run_id


def garble_row(store: Any, run_id: str) -> None:
    """Store a run row whose ``steps`` is text, behind the store's back."""
    if store.backend == "memory":
        store._runs[run_id].steps = "abc"
    elif store.backend == "redis":
        store.client.hset(f"{store.prefix}run:{run_id}", "steps", "abc")
    else:
        with store._transaction() as cursor:
            if store.backend == "sqlite":
                cursor.execute(f"UPDATE {store.runs_table} SET steps = 'abc' WHERE run_id = ?", (run_id,))
            else:  # PostgreSQL types its columns: a NULL status is the damage it lets through
                cursor.execute(f"ALTER TABLE {store.runs_table} ALTER COLUMN status DROP NOT NULL")
                cursor.execute(f"UPDATE {store.runs_table} SET status = NULL WHERE run_id = %s", (run_id,))


def test_a_garbled_run_row_is_named_and_hides_no_other_run(store: Any, caplog: Any) -> None:
    runner = durable(one_node(), store)
    for run_id in ("good-1", "bad", "good-2"):
        runner.run({}, run_id=run_id)
    garble_row(store, "bad")
    with pytest.raises(CheckpointCorruptError, match="run 'bad'") as caught:
        get_run(store, "bad")
    assert caught.value.run_id == "bad"
    with pytest.raises(CheckpointCorruptError, match="run 'bad'"):
        runner.resume("bad")
    assert [info.run_id for info in list_runs(store)] == ["good-2", "good-1"]
    assert [info.run_id for info in runs_page(store).runs] == ["good-2", "good-1"]
    assert "bad" in caplog.text


def test_a_redis_key_of_the_wrong_type_is_isolated(redis_url: str, new_store_url: Any) -> None:
    store = open_store(new_store_url("redis"))
    try:
        runner = durable(one_node(), store)
        runner.run({}, run_id="fine")
        runner.run({}, run_id="A")
        store.client.delete(f"{store.prefix}run:A")
        store.client.set(f"{store.prefix}run:A", "a plain string")
        assert [info.run_id for info in list_runs(store)] == ["fine"]
        with pytest.raises(CheckpointCorruptError, match=r"run 'A'.*cannot be read as a hash"):
            get_run(store, "A")
        runner.run({}, run_id="B")
        store.client.hset(f"{store.prefix}records:B", "not-a-number", b"x")
        with pytest.raises(CheckpointCorruptError, match=r"run 'B'.*not a number"):
            steps(store, "B")
        assert {info.run_id for info in list_runs(store)} == {"fine", "B"}
    finally:
        store.close()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda path: path.write_bytes(path.read_bytes()[:1000]), id="truncated"),
        pytest.param(
            lambda path: path.write_bytes(b"\0" * 100 + path.read_bytes()[100:]), id="zeroed-header"
        ),
        pytest.param(lambda path: path.write_text("just a text file\n" * 100), id="foreign"),
    ],
)
def test_a_damaged_sqlite_file_is_a_persistence_error_naming_it(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "runs.db"
    store = open_store(f"sqlite:///{path}")
    durable(one_node(), store).run({"x": "y" * 5000}, run_id="r1")
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    damage(path)
    with pytest.raises(PersistenceError, match=str(path)) as caught:
        store = open_store(f"sqlite:///{path}")
        get_run(store, "r1")
        store.close()
    assert "sqlite3" not in type(caught.value).__module__
    cli = subprocess.run(
        [sys.executable, "-m", "kaygraph", "runs", "list", "--store", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert cli.returncode == 1
    assert "Traceback" not in cli.stderr and str(path) in cli.stderr + cli.stdout
    assert len((cli.stderr + cli.stdout).strip().splitlines()) == 1


def test_a_sqlite_path_that_is_a_directory_or_in_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(PersistenceError, match=r"directory .*missing.* does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(PersistenceError, match="is a directory"):
        open_store(f"sqlite:///{tmp_path}")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis://:hunter2@127.0.0.1:1/0", id="redis-unreachable"),
        pytest.param("postgresql://postgres:hunter2@127.0.0.1:1/test", id="postgres-unreachable"),
    ],
)
def test_an_unreachable_server_fails_at_once_naming_the_url_without_password(url: str) -> None:
    with pytest.raises(PersistenceError, match=r"127\.0\.0\.1:1") as caught:
        durable(one_node(), url)
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_a_redis_db_index_out_of_range_fails_at_once(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    with pytest.raises(PersistenceError, match=r"db|DB") as caught:
        durable(one_node(), f"{base}/999")
    assert "/999" in str(caught.value)


def test_read_only_commands_create_no_store(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "kaygraph", "runs", "list"], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0
    where = "sqlite:///.kaygraph/runs.db"
    assert run.stdout.strip() == f"no runs in {where} (pass --store URL to read another store)"
    assert not (tmp_path / ".kaygraph").exists()
    show = subprocess.run(
        [sys.executable, "-m", "kaygraph", "runs", "show", "nope"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert show.returncode == 1 and "no run 'nope'" in show.stderr and "Traceback" not in show.stderr
    assert not (tmp_path / ".kaygraph").exists()


def test_a_bad_run_id_is_quoted_whole_when_short_and_cut_when_long() -> None:
    from kaygraph.ext.persistence.base import RUN_ID_RULE, check_run_id

    with pytest.raises(PersistenceError) as short:
        check_run_id("has space")
    assert str(short.value) == f"invalid run id 'has space': run ids are {RUN_ID_RULE}"
    with pytest.raises(PersistenceError) as number:
        check_run_id(42)
    assert str(number.value) == f"a run id must be a str, got 42 (int); run ids are {RUN_ID_RULE}"
    with pytest.raises(PersistenceError) as long:
        check_run_id("x y" * 100)
    assert str(long.value).startswith(f"invalid run id '{('x y' * 100)[:56]}...' (300 characters): run ids")


def test_an_unparsable_url_is_never_echoed_in_a_message() -> None:
    from kaygraph.ext.persistence.base import redact_url

    assert redact_url("redis://:secret@[::1/0") == "<unparsable URL>"
    assert redact_url("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"


def test_a_run_row_with_a_wrong_type_names_the_field_and_the_type() -> None:
    from kaygraph.ext.persistence.base import run_from_row

    row = {
        "run_id": "r",
        "graph_name": 5,
        "status": "running",
        "created_at": 1.0,
        "updated_at": 1.0,
        "steps": 0,
        "serializer": "json",
    }
    with pytest.raises(CheckpointCorruptError) as caught:
        run_from_row(row, "r", "memory://x")
    assert str(caught.value) == (
        "the metadata of run 'r' in memory://x is damaged (graph_name is 5 (int), not text); delete the run "
        "(kaygraph runs delete r --force) and start it again."
    )
    assert caught.value.run_id == "r"


def test_a_sqlite_store_in_a_missing_directory_names_the_file_and_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "x.db"
    with pytest.raises(PersistenceError) as caught:
        open_store(f"sqlite:///{path}")
    assert str(caught.value) == (
        f"cannot create the SQLite store {str(path)!r}: its directory {str(path.parent)!r} does not exist. "
        "Create it first (a store URL never creates directories, "
        "so a typo in the path does not go unnoticed)."
    )


def test_a_shared_store_that_cannot_be_checkpointed_is_named_with_its_key_path(new_store_url: Any) -> None:
    from kaygraph.core.exceptions import SerializationError

    store = new_store_url("memory")  # the checks come before any store is written to

    class Keys(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared[shared["bad_key"]] = "value"
            return None

    with pytest.raises(SerializationError) as non_string:
        durable(Graph(Keys(node_id="keys"), name="keys"), store).run({"bad_key": 3}, run_id="keys")
    assert str(non_string.value) == (
        "run 'keys' cannot checkpoint after node 'keys': cannot checkpoint shared[3]: top-level keys of the "
        "shared store must be strings, got int. Use a string key."
    )
    assert non_string.value.key_path == "shared[3]"

    class Appends(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["items"].append(object())
            return None

    with pytest.raises(SerializationError) as appended:
        durable(Graph(Appends(node_id="appends"), name="appends"), store).run(
            {"items": [1, 2]}, run_id="appends"
        )
    assert appended.value.key_path == "shared['items'][2]"


def test_a_writer_without_the_lease_is_refused_naming_the_run_and_the_record(store: Any) -> None:
    from kaygraph.core.exceptions import RunLockedError

    durable(one_node(), store).run({}, run_id="taken")
    with pytest.raises(RunLockedError) as caught:
        store.append("taken", 99, b"{}", owner="another-host:1:1:token")
    assert str(caught.value) == (
        "cannot write checkpoint 99 of run 'taken': this process no longer holds the run's lease (another "
        "process took the run over). This writer stops so the history is not interleaved."
    )
    assert caught.value.run_id == "taken"


def test_a_postgres_schema_that_is_not_an_identifier_is_named(postgres_url: str) -> None:
    from kaygraph.ext.persistence.postgres import PostgresStore

    with pytest.raises(PersistenceError) as caught:
        PostgresStore(postgres_url, schema="bad schema")
    assert str(caught.value) == "PostgresStore schema must be a plain SQL identifier, got 'bad schema'"


def test_a_shared_store_that_is_not_a_dict_is_named(new_store_url: Any) -> None:
    from kaygraph.core.exceptions import SerializationError

    with pytest.raises(SerializationError) as caught:
        durable(one_node(), new_store_url("memory")).run([1, 2], run_id="listy")  # type: ignore[arg-type]
    assert caught.value.key_path == "shared"
    assert "cannot checkpoint a shared store of type list" in str(caught.value)


def test_the_persistence_extension_describes_the_configured_store(monkeypatch: pytest.MonkeyPatch) -> None:
    import kaygraph.ext.persistence  # noqa: F401  (registers the extension)
    from kaygraph.config import get_config
    from kaygraph.ext.base import get_extension

    extension = get_extension("persistence")
    assert extension is not None
    get_config().configure(persistence={"url": "redis://:hunter2@cache.example:6379/2", "ttl": 600})
    described = extension.describe()
    assert (described["store"], described["ttl"]) == ("redis://:***@cache.example:6379/2", "600 s")


def test_a_record_of_an_unknown_kind_is_named_with_its_run_and_seq() -> None:
    from kaygraph.ext.persistence.records import unframe

    with pytest.raises(CheckpointCorruptError) as caught:
        unframe(b"X\x00\x00\x00\x00{}", "r1", 7)
    assert "unknown record kind b'X'" in str(caught.value)
    assert "'r1'" in str(caught.value) and "7" in str(caught.value)


def test_a_writer_of_a_deleted_run_is_told_it_was_deleted(store: Any) -> None:
    from kaygraph.core.exceptions import RunNotFoundError

    durable(one_node(), store).run({}, run_id="gone")
    store.delete_run("gone")
    with pytest.raises(RunNotFoundError) as caught:
        store.append("gone", 99, b"{}", owner="someone")
    assert str(caught.value) == (
        "run 'gone' was deleted while this process was writing it (delete_run(force=True) or expiry); this "
        "writer stops without storing anything more. Start the run again if it is still needed."
    )


def test_register_type_refuses_a_class_defined_in_a_function_by_name() -> None:
    import dataclasses

    from kaygraph.core.exceptions import SerializationError
    from kaygraph.ext.persistence.serialization import register_type

    @dataclasses.dataclass
    class Local:
        a: int

    with pytest.raises(SerializationError) as caught:
        register_type(Local)
    assert str(caught.value).startswith("cannot checkpoint register_type(")
    assert "<locals>.Local: the class is defined inside a function" in str(caught.value)


def test_the_extension_describes_a_memory_or_url_less_server_store_and_the_serializer() -> None:
    import kaygraph.ext.persistence  # noqa: F401  (registers the extension)
    from kaygraph.config import get_config
    from kaygraph.ext.base import get_extension

    extension = get_extension("persistence")
    assert extension is not None
    get_config().configure(persistence={"backend": "memory", "serializer": "pickle"})
    described = extension.describe()
    assert (described["store"], described["serializer"]) == ("memory:// (this process only)", "pickle")
    get_config().configure(persistence={"backend": "redis"})
    assert extension.describe()["store"] == "redis (persistence.url is not set)"


def test_a_sync_call_on_an_async_graph_names_the_async_method(new_store_url: Any) -> None:
    from kaygraph import AsyncGraph, AsyncNode

    runner = durable(AsyncGraph(AsyncNode(node_id="a"), name="ag"), new_store_url("memory"))
    with pytest.raises(PersistenceError) as caught:
        runner.run({})
    assert str(caught.value) == "graph 'ag' is an AsyncGraph: use `await runner.run_async(...)`"


def test_a_run_row_without_a_serializer_is_damaged() -> None:
    from kaygraph.ext.persistence.base import run_from_row

    row = {
        "run_id": "r",
        "graph_name": "g",
        "status": "running",
        "created_at": 1.0,
        "updated_at": 1.0,
        "steps": 0,
    }
    with pytest.raises(CheckpointCorruptError, match=r"is damaged \(serializer is missing\)"):
        run_from_row(row, "r", "memory://x")


def test_a_successful_run_records_no_error_and_none_encodes_as_null(store: Any) -> None:
    from kaygraph.ext.persistence.serialization import JSONSerializer

    durable(one_node(), store).run({}, run_id="fine")
    info = get_run(store, "fine")
    assert (info.status, info.error, info.traceback) == ("succeeded", None, None)
    assert JSONSerializer().encode(None, "shared['x']") == "null"
