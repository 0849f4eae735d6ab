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
    """A URL for a fresh, empty store of ``backend`` and a function that erases it afterwards
    (server stores are erased by the ``server_store_url`` fixture itself)."""
    if backend == "memory":
        from kaygraph.ext.persistence import memory

        name = f"test-{uuid.uuid4().hex[:10]}"
        return f"memory://{name}", lambda: memory._named_stores.pop(name, None)
    return request.getfixturevalue("server_store_url")(backend, "runs"), lambda: None


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


def insert_expired(store: CheckpointStore, count: int) -> None:
    """Store ``count`` finished runs that expired a minute ago (with one record each), in bulk."""
    import time

    from kaygraph.ext.persistence.abc import RunInfo

    now = time.time()
    rows = [
        RunInfo(
            run_id=f"old-{index}",
            graph_name="old",
            status="succeeded",
            created_at=now - 3600,
            updated_at=now - 3600,
            expires_at=now - 60,
        )
        for index in range(count)
    ]
    backend = store.backend
    if backend == "memory":
        for info in rows:  # in bulk: create_run would purge the ones stored before
            store._runs[info.run_id] = info  # type: ignore[attr-defined]
            store._records[info.run_id] = {0: b"J0000{}"}  # type: ignore[attr-defined]
            store._note_expiry(info.run_id, info.expires_at)  # type: ignore[attr-defined]
    elif backend == "redis":
        client, prefix = store.client, store.prefix  # type: ignore[attr-defined]
        pipeline = client.pipeline(transaction=False)
        for info in rows:
            fields = {
                name: repr(value) if isinstance(value, float) else str(value)
                for name, value in info.__dict__.items()
                if value is not None
            }
            pipeline.hset(f"{prefix}run:{info.run_id}", mapping=fields)
            pipeline.hset(f"{prefix}records:{info.run_id}", "0", b"J0000{}")
            pipeline.zadd(f"{prefix}runs", {info.run_id: info.created_at})
            pipeline.zadd(f"{prefix}expiries", {info.run_id: int((info.expires_at or 0) * 1000)})
        pipeline.execute()
    else:
        ph = store.placeholder  # type: ignore[attr-defined]
        columns = ", ".join(RunInfo.FIELDS)
        marks = ", ".join(ph for _ in RunInfo.FIELDS)
        with store._transaction() as cursor:  # type: ignore[attr-defined]
            cursor.executemany(
                f"INSERT INTO {store.runs_table} ({columns}) VALUES ({marks})",  # type: ignore[attr-defined]
                [info.as_row() for info in rows],
            )
            cursor.executemany(
                f"INSERT INTO {store.checkpoints_table} (run_id, seq, data) VALUES ({ph}, 0, {ph})",  # type: ignore[attr-defined]
                [(info.run_id, b"J0000{}") for info in rows],
            )


def leave_orphan_records(store: CheckpointStore, run_id: str) -> None:
    """Store a record of ``run_id`` without its run row, as a writer of an older version could."""
    backend = store.backend
    if backend == "memory":
        store._records[run_id] = {0: b"J0000{}"}  # type: ignore[attr-defined]
    elif backend == "redis":
        store.client.hset(f"{store.prefix}records:{run_id}", "0", b"J0000{}")  # type: ignore[attr-defined]
    else:
        ph = store.placeholder  # type: ignore[attr-defined]
        with store._transaction() as cursor:  # type: ignore[attr-defined]
            cursor.execute(
                f"INSERT INTO {store.checkpoints_table} (run_id, seq, data) VALUES ({ph}, 0, {ph})",  # type: ignore[attr-defined]
                (run_id, b"J0000{}"),
            )


@pytest.fixture
def expired_runs() -> Any:
    """``expired_runs(store, count)``: bulk-insert finished runs whose TTL has passed."""
    return insert_expired


@pytest.fixture
def orphan_records() -> Any:
    """``orphan_records(store, run_id)``: records of a run that has no run row."""
    return leave_orphan_records
