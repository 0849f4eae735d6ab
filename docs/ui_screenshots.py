"""Make docs/ui-runs.png and docs/ui-run.png: the dashboard on runs of the demo's graph.

    .venv/bin/python docs/ui_screenshots.py

Records runs of examples/demo.py's question answerer in a temporary SQLite store (answered, one
whose LLM is down, one still running), serves the dashboard on a free port and photographs the
runs list and one run with Debian's chromium (the browser the tests use).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import demo  # noqa: E402

from kaygraph.ext.persistence import durable  # noqa: E402

QUESTIONS = [
    "what happens when a run crashes?",
    "how are failed calls retried?",
    "what does the observability extension export?",
    "what happens when a run crashes?",
    "how are failed calls retried?",
]
RELEASE = threading.Event()


class DownAnswer(demo.Answer):
    """The LLM never answers: the run fails, with its error on the page."""

    def exec(self, prompt: str) -> str:
        raise TimeoutError("fake LLM: upstream timed out on every attempt")


class SlowAnswer(demo.Answer):
    """Waits for the screenshots before answering: a run that is running."""

    def exec(self, prompt: str) -> str:
        RELEASE.wait(60)
        return super().exec(prompt)


def record(store: str) -> None:
    for index, question in enumerate(QUESTIONS):
        with durable(demo.build_graph(), store) as runner:
            runner.run({"documents": demo.DOCUMENTS, "question": question}, run_id=f"answer-{index + 1:02d}")
        time.sleep(0.3)
    with durable(demo.build_graph(DownAnswer(node_id="answer")), store) as runner:
        try:
            runner.run({"documents": demo.DOCUMENTS, "question": QUESTIONS[1]}, run_id="llm-down")
        except TimeoutError:
            pass
    slow = durable(demo.build_graph(SlowAnswer(node_id="answer")), store)
    thread = threading.Thread(
        target=slow.run,
        args=({"documents": demo.DOCUMENTS, "question": QUESTIONS[2]},),
        kwargs={"run_id": "in-progress"},
        daemon=True,
    )
    thread.start()
    time.sleep(1.0)


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from kaygraph.ext.ui import create_app

    with tempfile.TemporaryDirectory() as directory:
        store = f"sqlite:///{directory}/runs.db"
        record(store)
        app = create_app(store, graphs=[demo.build_graph()])
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=flags)
            page: Any = browser.new_page(viewport={"width": 1360, "height": 760})
            page.goto(base + "/#/runs")
            page.locator("#runs-body tr[data-run]").nth(6).wait_for()
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "docs" / "ui-runs.png"))
            page.set_viewport_size({"width": 1360, "height": 900})
            page.goto(base + "/#/runs/answer-01")
            page.locator("#timeline .step[data-step]").first.wait_for()
            page.locator("#timeline .step[data-step='3']").click()
            page.locator("#state-title", has_text="after step 3").wait_for()
            page.locator("#state-table .badge").first.wait_for()
            page.wait_for_timeout(300)
            page.screenshot(path=str(ROOT / "docs" / "ui-run.png"), full_page=True)
            browser.close()
        RELEASE.set()
        server.should_exit = True
        time.sleep(0.5)
    print("wrote docs/ui-runs.png and docs/ui-run.png")


if __name__ == "__main__":
    main()
