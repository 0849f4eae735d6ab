"""Store-specific behaviour: URL options, reconnecting to PostgreSQL, damaged Redis metadata."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kaygraph import Graph, Node
from kaygraph.core.exceptions import CheckpointCorruptError, PersistenceError
from kaygraph.ext.persistence import durable, open_store
from kaygraph.utils.urls import without_options


class Once(Node):
    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["done"] = shared.get("done", 0) + 1


def test_only_consumed_url_options_are_removed() -> None:
    url = "postgresql://u@h/db?sslmode=verify-full&schema=s&application_name=a%20b&sslrootcert=%2Fca.pem"
    assert without_options(url, ("schema",)) == (  # the others exactly as written (libpq reads "+")
        "postgresql://u@h/db?sslmode=verify-full&application_name=a%20b&sslrootcert=%2Fca.pem"
    )
    assert without_options("redis://h:6379/?db=14&prefix=p:", ("prefix",)) == "redis://h:6379/?db=14"
    assert without_options("redis://h:6379/2?prefix=p:", ("prefix",)) == "redis://h:6379/2"


def test_redis_url_keeps_db_next_to_prefix(redis_url: str) -> None:
    store = open_store("redis://127.0.0.1:6379/?db=14&prefix=kgtest-url:")
    try:
        assert store.client.connection_pool.connection_kwargs["db"] == 14  # type: ignore[attr-defined]
        assert store.prefix == "kgtest-url:"  # type: ignore[attr-defined]
    finally:
        store.close()


def test_postgres_url_keeps_sslmode_and_other_options_next_to_schema(new_store_url: Any) -> None:
    url = new_store_url("postgres")  # ...?schema=kgtest_...
    store = open_store(f"{url}&application_name=kg%20url%20test&options=-c%20statement_timeout%3D1234")
    try:
        connection = store._connection  # type: ignore[attr-defined]
        assert connection.execute("SHOW application_name").fetchone() == ("kg url test",)
        assert connection.execute("SHOW statement_timeout").fetchone() == ("1234ms",)
    finally:
        store.close()
    # The test server has no SSL: sslmode=require must reach the driver and refuse to connect,
    # never be dropped silently (a security downgrade).
    with pytest.raises(PersistenceError, match="SSL"):
        open_store(f"{url}&sslmode=require")


def test_postgres_store_reconnects_after_its_connection_is_killed(
    new_store_url: Any, postgres_url: str
) -> None:
    import psycopg

    url = new_store_url("postgres")
    with durable(Graph(Once(node_id="once"), name="pg"), url) as runner:
        assert runner.run({}, run_id="before").status == "succeeded"
        for run_id in ("after-1", "after-2"):
            pid = runner.store._connection.info.backend_pid  # type: ignore[attr-defined]
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert runner.run({}, run_id=run_id).status == "succeeded"
        assert {info.run_id for info in runner.list_runs()} == {"before", "after-1", "after-2"}


def test_a_damaged_redis_run_hash_hides_only_that_run(
    new_store_url: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(new_store_url("redis"))
    try:
        runner = durable(Graph(Once(node_id="once"), name="r"), store)
        for run_id in ("good", "bad"):
            runner.run({}, run_id=run_id)
        store.client.hset(f"{store.prefix}run:bad", "created_at", "not-a-number")  # type: ignore[attr-defined]
        with caplog.at_level(logging.WARNING, logger="kaygraph.ext.persistence"):
            assert [info.run_id for info in runner.list_runs()] == ["good"]
        assert "skipping run 'bad'" in caplog.text
        with pytest.raises(CheckpointCorruptError, match=r"metadata of run 'bad'.*is damaged") as caught:
            store.get_run("bad")
        assert caught.value.run_id == "bad"
        assert runner.delete_run("bad", force=True) and store.get_run("good") is not None
    finally:
        store.close()


@pytest.mark.service("redis")
def test_a_redis_run_that_expired_natively_leaves_no_index_entry_behind(new_store_url: Any) -> None:
    store = open_store(new_store_url("redis"))
    try:
        for run_id in ("kept", "expired"):
            durable(Graph(Node(node_id="only"), name="g"), store).run({}, run_id=run_id)
        store.client.delete(f"{store.prefix}run:expired")  # as Redis does when the key's TTL ends

        assert [info.run_id for info in store.list_runs()] == ["kept"]
        for index in ("runs", "updates"):
            assert store.client.zscore(f"{store.prefix}{index}", "expired") is None, index
            assert store.client.zscore(f"{store.prefix}{index}", "kept") is not None, index
    finally:
        store.close()
