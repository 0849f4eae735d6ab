"""The ``store`` fixture: every persistence behaviour runs on memory, SQLite, Redis and PostgreSQL.

Redis tests use their own key prefix (db 15) and PostgreSQL tests their own schema; both are
removed after the test, so runs never leak between tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kaygraph.ext.persistence import open_store
from kaygraph.ext.persistence.abc import CheckpointStore

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
]


def make_store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> tuple[str, Any]:
    """A URL for a fresh, empty store of ``backend`` and a function that erases it afterwards."""
    token = uuid.uuid4().hex[:10]
    if backend == "memory":
        from kaygraph.ext.persistence import memory

        name = f"test-{token}"
        return f"memory://{name}", lambda: memory._named_stores.pop(name, None)
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/runs-{token}.db", lambda: None
    if backend == "redis":
        base = request.getfixturevalue("redis_url")
        prefix = f"kgtest:{token}:"

        def drop_keys() -> None:
            import redis

            client = redis.Redis.from_url(base)
            keys = list(client.scan_iter(f"{prefix}*"))
            if keys:
                client.delete(*keys)
            client.close()

        return f"{base}?prefix={prefix}", drop_keys
    base = request.getfixturevalue("postgres_url")
    schema = f"kgtest_{token}"

    def drop_schema() -> None:
        import psycopg

        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    return f"{base}?schema={schema}", drop_schema


@pytest.fixture
def new_store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    """``new_store_url(backend)``: the URL of a fresh store of that backend, erased after the test."""
    cleanups = []

    def make(backend: str) -> str:
        url, cleanup = make_store_url(backend, request, tmp_path)
        cleanups.append(cleanup)
        return url

    yield make
    for cleanup in cleanups:
        cleanup()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, new_store_url: Any) -> str:
    return str(new_store_url(request.param))


@pytest.fixture
def store(store_url: str) -> Iterator[CheckpointStore]:
    store = open_store(store_url)
    yield store
    store.close()


def raw_traces(store: CheckpointStore, run_id: str) -> list[Any]:
    """Everything the backend itself still holds about ``run_id``, read without the store's API."""
    backend = store.backend
    if backend == "memory":
        return [place for place in ("_runs", "_records") if run_id in getattr(store, place)]
    if backend == "redis":
        client = store.client  # type: ignore[attr-defined]
        keys = [key for key in client.scan_iter(f"{store.prefix}*") if run_id.encode() in key]  # type: ignore[attr-defined]
        indexes = [f"{store.prefix}runs", f"{store.prefix}expiries"]  # type: ignore[attr-defined]
        return keys + [index for index in indexes if client.zscore(index, run_id) is not None]
    traces = []
    with store._transaction() as cursor:  # type: ignore[attr-defined]
        for table in (store.runs_table, store.checkpoints_table):  # type: ignore[attr-defined]
            cursor.execute(f"SELECT count(*) FROM {table} WHERE run_id = {store.placeholder}", (run_id,))  # type: ignore[attr-defined]
            count = cursor.fetchone()[0]
            if count:
                traces.append((table, count))
    return traces


def overwrite_records(store: CheckpointStore, run_id: str, damage: Any) -> None:
    """Replace every stored record of ``run_id`` with ``damage(record)``, behind the store's back."""
    records = store.load(run_id)
    backend = store.backend
    for seq, data in records:
        bad = damage(data)
        if backend == "memory":
            store._records[run_id][seq] = bad  # type: ignore[attr-defined]
        elif backend == "redis":
            store.client.hset(f"{store.prefix}records:{run_id}", str(seq), bad)  # type: ignore[attr-defined]
        else:
            with store._transaction() as cursor:  # type: ignore[attr-defined]
                ph = store.placeholder  # type: ignore[attr-defined]
                cursor.execute(
                    f"UPDATE {store.checkpoints_table} SET data = {ph} WHERE run_id = {ph} AND seq = {ph}",  # type: ignore[attr-defined]
                    (bad, run_id, seq),
                )


@pytest.fixture
def traces() -> Any:
    """``traces(store, run_id)``: what the backend still holds about a run (see :func:`raw_traces`)."""
    return raw_traces


@pytest.fixture
def worker_env() -> dict[str, str]:
    """The environment for worker processes: this one's, without KayGraph configuration."""
    return {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}


@pytest.fixture
def damage_records() -> Any:
    """``damage_records(store, run_id, damage)``: corrupt a run's records in the backend."""
    return overwrite_records
