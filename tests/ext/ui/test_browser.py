"""The dashboard's pages in a real browser: Debian's chromium driven by Playwright, over SQLite.

Set ``KAYGRAPH_UI_SCREENSHOTS=docs`` to also save the README's screenshots there.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from ui_graphs import GATES
from ui_helpers import wait_for

from kaygraph.ext.persistence import durable

XSS = {
    "note": "<script>window.__pwned = 1</script>",
    "html": '<img src=x onerror="window.__pwned = 2">',
    "link": "javascript:window.__pwned = 3",
}


def screenshot(page: Any, name: str) -> None:
    folder = os.environ.get("KAYGRAPH_UI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def seed(store_url: str) -> None:
    from ui_graphs import pipeline

    with durable(pipeline(), store_url) as runner:
        for index in range(6):
            shared = {
                "loops": 2 + index % 3,
                "question": "what happens when a run crashes?",
                "password": "hunter2",
                **XSS,
            }
            runner.run(shared, run_id=f"run-{index:03d}")


def test_runs_list_renders_with_counts(sqlite_url: str, serve: Any, page: Any) -> None:
    seed(sqlite_url)
    server = serve(sqlite_url)
    page.goto(server.url + "/#/runs")
    rows = page.locator("#runs-body tr[data-run]")
    rows.first.wait_for()
    assert rows.count() == 6
    assert rows.first.get_attribute("data-run") == "run-005"  # newest first
    assert page.locator("[data-count=all] .n").inner_text() == "6"
    assert page.locator("[data-count=succeeded] .n").inner_text() == "6"
    page.locator("[data-count=failed]").click()
    page.locator("td.empty").wait_for()
    assert "No runs" in page.locator("td.empty").inner_text()
    page.locator("[data-count=all]").click()
    rows.first.wait_for()
    screenshot(page, "ui-runs.png")


def test_run_page_shows_graph_timeline_state_and_diff_escaped(sqlite_url: str, serve: Any, page: Any) -> None:
    seed(sqlite_url)
    server = serve(sqlite_url)
    page.goto(server.url + "/#/runs/run-002")
    page.locator("#timeline .step[data-step]").first.wait_for()
    # The graph: all three nodes drawn, the path taken highlighted (including the Think loop).
    nodes = page.locator("#graph svg [data-node]")
    assert nodes.count() == 3
    assert page.locator("#graph [data-node=Answer].visited").count() == 1
    assert page.locator("#graph .edge.taken").count() >= 2
    # The timeline: one row per step, with node and action.
    steps = page.locator("#timeline .step[data-step]")
    assert steps.count() == 6  # Load, Think x4 (loops=4), Answer
    assert steps.nth(0).locator(".node-id").inner_text() == "Load"
    assert steps.nth(1).locator(".action").inner_text() == "again"
    # The state after the selected (last) step, then another step's state and its diff.
    page.locator("#state-table").wait_for()
    text = page.locator("#state").inner_text()
    assert '"<script>window.__pwned = 1</script>"' in text  # shown as text...
    assert "hunter2" not in text and "hidden" in text  # ...secrets hidden
    steps.nth(1).click()
    page.locator("#state-title", has_text="after step 2").wait_for()
    page.locator("#tab-diff").click()
    page.locator("#diff-table").wait_for()
    diff = page.locator("#diff-table").inner_text()
    assert "rounds" in diff and "api_key" in diff
    # Nothing from the state ran or became a link.
    assert page.evaluate("window.__pwned") is None
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("#main img").count() == 0
    page.locator("#tab-state").click()
    steps.nth(5).click()
    page.locator("#state-title", has_text="after step 6").wait_for()
    page.locator("#state-table").wait_for()
    screenshot(page, "ui-run.png")


def highlighted(page: Any) -> dict[str, Any]:
    """What the run page's graph marks: visited nodes, taken edges, the selected and current node."""
    return page.evaluate(
        """() => {
          const ids = (selector, attr) =>
            [...document.querySelectorAll(selector)].map((e) => e.getAttribute(attr)).sort();
          return {
            visited: ids("#graph [data-node].visited", "data-node"),
            taken: ids("#graph [data-edge].taken", "data-edge"),
            selected: ids("#graph [data-node].selected", "data-node"),
            current: ids("#graph [data-node].current", "data-node"),
          };
        }"""
    )


def test_selecting_a_step_draws_the_path_up_to_that_step(sqlite_url: str, serve: Any, page: Any) -> None:
    seed(sqlite_url)
    server = serve(sqlite_url)
    page.goto(server.url + "/#/runs/run-002")  # Load, Think x4 (again, again, again, done), Answer
    page.locator("#timeline .step[data-step='6'].selected").wait_for()
    whole = {
        "visited": ["Answer", "Load", "Think"],
        "taken": ["Load>Think", "Think>Answer", "Think>Think"],
        "selected": [],
        "current": [],
    }
    assert highlighted(page) == whole
    assert not page.locator("#graph-at").is_visible()
    page.locator("#timeline .step[data-step='1']").click()
    page.locator("#graph [data-node=Load].selected").wait_for()
    assert highlighted(page) == {"visited": ["Load"], "taken": [], "selected": ["Load"], "current": []}
    assert page.locator("#graph-at").inner_text().startswith("path up to step 1")
    page.locator("#timeline .step[data-step='3']").click()
    page.locator("#graph [data-node=Think].selected").wait_for()
    assert highlighted(page) == {
        "visited": ["Load", "Think"],
        "taken": ["Load>Think", "Think>Think"],
        "selected": ["Think"],
        "current": [],
    }
    screenshot(page, "ui-run-step.png")
    page.locator("#graph-latest").click()  # back to the whole run: the latest step selected
    page.locator("#timeline .step[data-step='6'].selected").wait_for()
    assert highlighted(page) == whole
    assert not page.locator("#graph-at").is_visible()
    page.locator("#timeline .step[data-step='2']").click()
    page.locator("#graph [data-node=Think].selected").wait_for()
    assert highlighted(page)["taken"] == ["Load>Think"]
    page.locator("#timeline .step[data-step='6']").click()  # selecting the latest step also shows it all
    page.locator("#graph [data-node].selected").wait_for(state="detached")
    assert highlighted(page) == whole


def test_a_step_inside_a_subgraph_counts_the_edge_into_it(sqlite_url: str, serve: Any, page: Any) -> None:
    from ui_graphs import nested

    with durable(nested(), sqlite_url) as runner:
        runner.run({}, run_id="nested-1")  # Load, fetch > reload, fetch, Answer
    server = serve(sqlite_url, graphs=["ui_graphs:nested"])
    page.goto(server.url + "/#/runs/nested-1")
    page.locator("#timeline .step[data-step='2']").click()
    page.locator("#graph [data-node=fetch].selected").wait_for()
    assert highlighted(page) == {
        "visited": ["Load", "fetch"],
        "taken": ["Load>fetch"],
        "selected": ["fetch"],
        "current": [],
    }
    page.locator("#timeline .step[data-step='4']").click()
    page.locator("#graph [data-node].selected").wait_for(state="detached")
    assert highlighted(page)["taken"] == ["Load>fetch", "fetch>Answer"]


def test_a_run_started_from_the_page_updates_live(sqlite_url: str, serve: Any, page: Any) -> None:
    server = serve(sqlite_url)
    GATES["browser"] = gate = threading.Event()
    page.goto(server.url + "/#/runs")
    page.locator("#start-run").click()
    page.locator("#start-graph").select_option("slow")
    page.locator("#start-shared").fill('{"gate": "browser", "sleep": 30, "waits": 3}')
    page.locator("#start-submit").click()
    page.locator("#run-id").wait_for()
    page.evaluate("window.__same_page = true")  # gone if anything reloads the page
    page.locator("#run-id + .pill[data-status=running]").wait_for()
    page.locator("#graph [data-node].current").wait_for()
    gate.set()
    page.locator("#run-id + .pill[data-status=succeeded]").wait_for(timeout=15000)
    assert page.locator("#timeline .step[data-step]").count() == 4  # Wait x3, Load
    assert page.evaluate("window.__same_page") is True


def test_a_protected_dashboard_asks_for_a_token_and_refuses_a_wrong_one(
    sqlite_url: str, serve: Any, page: Any
) -> None:
    seed(sqlite_url)
    server = serve(sqlite_url, token="admin-token-123", read_token="reader-token-456")
    page.goto(server.url + "/")
    page.locator("#token").wait_for()
    assert page.locator("#runs").count() == 0
    page.locator("#token").fill("wrong-token-000")
    page.locator("#token").press("Enter")
    page.locator("#login-error", has_text="refused").wait_for()
    assert page.locator("#runs").count() == 0
    page.locator("#token").fill("reader-token-456")
    page.locator("#token").press("Enter")
    page.locator("#runs-body tr[data-run]").first.wait_for()
    assert page.locator("#role").inner_text() == "read-only"
    assert page.locator("#start-run").count() == 0  # the read-only role cannot start runs
    # The token lives in this tab's sessionStorage, never in a cookie.
    assert page.context.cookies() == []
    wait_for(lambda: page.evaluate("sessionStorage.getItem('kaygraph.token')") == "reader-token-456")


def test_the_layout_holds_on_a_narrow_screen(sqlite_url: str, serve: Any, browser: Any) -> None:
    seed(sqlite_url)
    server = serve(sqlite_url)
    context = browser.new_context(viewport={"width": 420, "height": 900})
    page = context.new_page()
    page.goto(server.url + "/#/runs/run-001")
    page.locator("#timeline .step[data-step]").first.wait_for()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 440, f"the run page scrolls sideways on a phone ({width}px wide)"
    context.close()
