"""Fixtures: every scheduler behaviour runs on memory, SQLite, Redis and PostgreSQL, and graphs are
real modules written into the test's directory (imported by reference, as users' graphs are).

Redis tests use their own key prefix and PostgreSQL tests their own schema; both are removed
after the test.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
]

#: The graphs the tests schedule; ``COUNT_FILE`` gets one line per executed node (fire id).
GRAPHS = """
import os
import time

from kaygraph import AsyncGraph, AsyncNode, Graph, Node

COUNT_FILE = os.environ.get("KG_SCHED_COUNT_FILE", {count_file!r})


def record(params):
    line = f"{{params.get('fire_id')}}\\n".encode()
    fd = os.open(COUNT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one write with O_APPEND: lines from many processes never interleave
    finally:
        os.close(fd)


class Record(Node):
    def exec(self, _):
        if self.params.get("sleep"):  # sleep(0) alone can cost milliseconds on a busy machine
            time.sleep(float(self.params["sleep"]))
        record(self.params)
        return "done"


class Fail(Node):
    def exec(self, _):
        raise RuntimeError("the report service is down")


class AsyncRecord(AsyncNode):
    async def exec_async(self, _):
        import asyncio

        if self.params.get("sleep"):
            await asyncio.sleep(float(self.params["sleep"]))
        record(self.params)
        return "done"


class Pause(Node):
    def exec(self, _):
        time.sleep(float(self.params.get("sleep", 0)) or 0.001)
        return "done"


def two_steps():
    first = Pause()
    first >> Record()
    return Graph(start=first, name="two_steps")


def counting():
    return Graph(start=Record(), name="counting")


def slow():
    return Graph(start=Record(), name="slow")


def failing():
    return Graph(start=Fail(), name="failing")


def async_counting():
    return AsyncGraph(start=AsyncRecord(), name="async_counting")
"""


def make_store_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> tuple[str, Any]:
    """A URL for a fresh, empty store of ``backend`` and a function that erases it afterwards
    (server stores are erased by the ``server_store_url`` fixture itself)."""
    if backend == "memory":
        return f"memory://{kind}-{uuid.uuid4().hex[:10]}", lambda: None
    return request.getfixturevalue("server_store_url")(backend, kind), lambda: None


@pytest.fixture
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """``new_url(backend, kind)``: a fresh store URL of that backend, erased after the test."""
    cleanups = []

    def make(backend: str, kind: str = "sched") -> str:
        url, cleanup = make_store_url(backend, request, tmp_path, kind)
        cleanups.append(cleanup)
        return url

    yield make
    for cleanup in cleanups:
        cleanup()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, new_url: Callable[[str, str], str]) -> str:
    return new_url(backend, "sched")


@pytest.fixture
def store(store_url: str) -> Iterator[Any]:
    from kaygraph.ext.scheduler import open_schedule_store

    opened = open_schedule_store(store_url)
    yield opened
    opened.close()


class Graphs:
    """A module of test graphs on ``sys.path``, and the side file its nodes append fire ids to."""

    def __init__(self, directory: Path, module: str, count_file: Path) -> None:
        self.directory = directory
        self.module = module
        self.count_file = count_file

    def ref(self, name: str) -> str:
        return f"{self.module}:{name}"

    def executed(self) -> list[str]:
        """The fire ids whose node ran, one entry per execution, in order."""
        if not self.count_file.exists():
            return []
        return [line for line in self.count_file.read_text().splitlines() if line]

    def break_module(self) -> None:
        """Simulate a deploy that broke the module: the next import fails."""
        (self.directory / f"{self.module}.py").write_text(
            "raise ImportError('deploy 42 broke this module')\n"
        )
        sys.modules.pop(self.module, None)


@pytest.fixture
def graphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Graphs:
    module = f"kgsched_graphs_{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "project"
    directory.mkdir()
    count_file = tmp_path / "executed.txt"
    (directory / f"{module}.py").write_text(textwrap.dedent(GRAPHS.format(count_file=str(count_file))))
    monkeypatch.syspath_prepend(str(directory))
    yield Graphs(directory, module, count_file)
    sys.modules.pop(module, None)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)  # 2027-01-15 08:00:00 UTC, on every grid up to 10 minutes
