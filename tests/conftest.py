"""Shared fixtures: real servers on 127.0.0.1 and isolation of KayGraph's global state.

Tests that need a server use the ``redis_url`` / ``postgres_url`` fixtures. When the server is not
reachable they skip with the reason, except when ``KAYGRAPH_REQUIRE_SERVICES=1`` (set by
``.ci/run``): then they fail, so CI can never pass by skipping a backend.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

REDIS_URL = os.environ.get("KAYGRAPH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_URL = os.environ.get("KAYGRAPH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) unless ``name`` listens on ``host:port``."""
    if _reachable(host, port):
        return
    reason = (
        f"{name} is not reachable on {host}:{port}; start it (see .ci/run) or point "
        f"KAYGRAPH_TEST_{name.upper()}_URL at one"
    )
    if os.environ.get("KAYGRAPH_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " (KAYGRAPH_REQUIRE_SERVICES=1 forbids skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(REDIS_URL)
    require_service("redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    return REDIS_URL


@pytest.fixture
def postgres_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(POSTGRES_URL)
    require_service("postgres", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL


@pytest.fixture(autouse=True)
def _isolate_kaygraph_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees another's global listeners, and the global config is rebuilt per test."""
    from kaygraph.core import events

    keep = ("KAYGRAPH_REQUIRE_SERVICES", "KAYGRAPH_TEST_", "KAYGRAPH_UI_SCREENSHOTS")
    for key in list(os.environ):
        if key.startswith("KAYGRAPH_") and not key.startswith(keep):
            monkeypatch.delenv(key)
    saved = events._global_listeners
    yield
    events._global_listeners = saved
    try:
        import kaygraph.config as config_module
    except ImportError:
        return
    reset = getattr(config_module, "_reset_for_tests", None)
    if reset is not None:
        reset()


SEED_VARIABLE = "KAYGRAPH_TEST_SEED"


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    """The random seed of a randomised test: ``$KAYGRAPH_TEST_SEED`` when set, else a fresh one.

    A failing test's report says ``KAYGRAPH_TEST_SEED=<n>``, so the same run can be repeated.
    """
    import random

    text = os.environ.get(SEED_VARIABLE, "").strip()
    if text and not text.isdigit():
        pytest.fail(f"{SEED_VARIABLE} must be a non-negative integer, got {text!r}", pytrace=False)
    value = int(text) if text else random.randrange(1 << 30)
    request.node.kaygraph_seed = value
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Name the seed in the report of a failed randomised test."""
    report: pytest.TestReport = yield
    value = getattr(item, "kaygraph_seed", None)
    if value is not None and report.failed:
        report.sections.append(("seed", f"rerun with {SEED_VARIABLE}={value} to repeat these random choices"))
    return report


@pytest.fixture
def server_store_url(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """``server_store_url(backend, kind)``: the URL of a fresh, empty store on ``sqlite`` (a file
    in ``tmp_path``), ``redis`` (a key prefix) or ``postgres`` (a schema), erased after the test.
    ``kind`` keeps the stores of one test apart (``"runs"``, ``"sched"``...)."""
    import uuid

    def make(backend: str, kind: str) -> str:
        token = uuid.uuid4().hex[:10]
        if backend == "sqlite":
            return f"sqlite:///{tmp_path}/{kind}-{token}.db"
        if backend == "redis":
            base = request.getfixturevalue("redis_url")
            prefix = f"kgtest:{kind}:{token}:"
            request.addfinalizer(lambda: _drop_redis_keys(base, prefix))
            return f"{base}?prefix={prefix}"
        if backend == "postgres":
            base = request.getfixturevalue("postgres_url")
            schema = f"kgtest_{kind}_{token}"
            request.addfinalizer(lambda: _drop_postgres_schema(base, schema))
            return f"{base}?schema={schema}"
        raise ValueError(f"no server store for backend {backend!r}: use sqlite, redis or postgres")

    return make


def _drop_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _drop_postgres_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
