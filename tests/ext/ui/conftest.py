"""Fixtures of the UI tests: a real uvicorn server on 127.0.0.1 over a real store of each backend.

``store_url`` is parametrized over SQLite, PostgreSQL and Redis (each test gets an empty store:
its own file, schema or key prefix, erased afterwards); ``serve(store_url, **create_app_options)``
starts a dashboard on a free port and returns its base URL.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the ui extra is not installed (pip install 'kaygraph[ui]')")

HERE = Path(__file__).parent
if str(HERE) not in sys.path:  # ui_graphs is imported by reference (module:attr), like user code
    sys.path.insert(0, str(HERE))

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
]


def _store_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, Callable[[], None]]:
    """A fresh store of ``backend``; the ``server_store_url`` fixture erases it after the test."""
    return request.getfixturevalue("server_store_url")(backend, "ui"), lambda: None


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url, cleanup = _store_url(request.param, request, tmp_path)
    yield url
    cleanup()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ui-{uuid.uuid4().hex[:8]}.db"


class Server:
    """A dashboard served by uvicorn on a thread: ``url``, ``app``, ``stop()``."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, name="ui-test-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test dashboard did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    @property
    def board(self) -> Any:
        return self.app.state.kaygraph

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """``serve(store_url, graphs=[...], **options)``: a running dashboard (stopped after the test)."""
    servers: list[Server] = []

    def start(store: Any, **options: Any) -> Server:
        from kaygraph.ext.ui import create_app

        options.setdefault("graphs", ["ui_graphs:pipeline", "ui_graphs:slow"])
        server = Server(create_app(store, **options))
        servers.append(server)
        return server

    yield start
    for server in servers:
        for run_id in server.board.launcher.active():
            token = server.board.launcher._active.get(run_id, (None, None))[1]
            if token is not None:
                token.cancel("test over")
        from ui_graphs import GATES

        for gate in GATES.values():
            gate.set()
        for run_id in server.board.launcher.active():
            server.board.launcher.wait(run_id, 10)
        server.stop()


# -- the browser: Debian's chromium driven by Playwright -----------------------------------------

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("KAYGRAPH_REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog opened: {dialog.message}"), dialog.dismiss()))
    page.problems = problems
    yield page
    context.close()
    assert not problems, problems
