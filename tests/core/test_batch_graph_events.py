"""A batch graph tells listeners about every parameter set exactly as its async twin does: the same
events, node ids, paths, indices, sizes, params, results and errors. Resuming skips finished sets,
and a resume index the sets no longer reach is refused with the whole story."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kaygraph import (
    AsyncBatchGraph,
    AsyncGraph,
    AsyncNode,
    BatchGraph,
    Graph,
    GraphExecutionError,
    Node,
    ResumePoint,
    RunListener,
)

VOLATILE = {"run", "node", "graph", "shared", "duration", "seq", "run_id"}


class Recorder(RunListener):
    """Every event with its stable fields (no timings, no objects that differ between runs)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, name: str, fields: dict[str, Any]) -> None:
        kept = {key: value for key, value in fields.items() if key not in VOLATILE}
        if isinstance(kept.get("error"), BaseException):
            kept["error"] = repr(kept["error"])
        self.events.append((name, kept))

    def on_run_start(self, **kwargs: Any) -> None:
        self._record("run_start", kwargs)

    def on_run_end(self, **kwargs: Any) -> None:
        self._record("run_end", kwargs)

    def on_node_start(self, **kwargs: Any) -> None:
        self._record("node_start", kwargs)

    def on_node_end(self, **kwargs: Any) -> None:
        self._record("node_end", kwargs)

    def on_node_error(self, **kwargs: Any) -> None:
        self._record("node_error", kwargs)

    def on_batch_item_start(self, **kwargs: Any) -> None:
        self._record("item_start", kwargs)

    def on_batch_item_end(self, **kwargs: Any) -> None:
        self._record("item_end", kwargs)


class Tag(Node):
    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        if self.params["doc"] == shared.get("fail_on"):
            raise ValueError(f"cannot tag {self.params['doc']}")
        shared.setdefault("tags", []).append(self.params["doc"])
        return None


class AsyncTag(AsyncNode):
    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        await asyncio.sleep(0)
        if self.params["doc"] == shared.get("fail_on"):
            raise ValueError(f"cannot tag {self.params['doc']}")
        shared.setdefault("tags", []).append(self.params["doc"])
        return None


class Docs(BatchGraph):
    def prep(self, shared: Any) -> Any:
        return [{"doc": doc} for doc in shared["docs"]]


class AsyncDocs(AsyncBatchGraph):
    async def prep_async(self, shared: Any) -> Any:
        return [{"doc": doc} for doc in shared["docs"]]


def run_sync(shared: dict[str, Any], **run_kwargs: Any) -> Recorder:
    recorder = Recorder()
    Graph(start=Docs(start=Tag(node_id="tag"), node_id="docs"), name="top").run(
        shared, listeners=[recorder], **run_kwargs
    )
    return recorder


def run_async(shared: dict[str, Any], **run_kwargs: Any) -> Recorder:
    recorder = Recorder()
    graph = AsyncGraph(start=AsyncDocs(start=AsyncTag(node_id="tag"), node_id="docs"), name="top")
    asyncio.run(graph.run_async(shared, listeners=[recorder], **run_kwargs))
    return recorder


RUNS = [pytest.param(run_sync, id="BatchGraph"), pytest.param(run_async, id="AsyncBatchGraph")]


def test_every_parameter_set_is_an_item_with_its_nodes_inside() -> None:
    shared: dict[str, Any] = {"docs": ["d0", "d1"]}
    events = run_sync(shared).events
    assert shared["tags"] == ["d0", "d1"]
    item_events = [(name, fields) for name, fields in events if name.startswith(("item", "node"))]
    assert item_events[0] == ("node_start", {"node_id": "docs", "path": ("docs",), "params": {}})
    assert item_events[1] == (
        "item_start",
        {"node_id": "docs", "path": ("docs",), "index": 0, "item": {"doc": "d0"}, "size": 2},
    )
    inner_start = item_events[2]
    assert inner_start == (
        "node_start",
        {"node_id": "tag", "path": ("docs", 0, "tag"), "params": {"doc": "d0"}},
    )
    assert item_events[4] == (
        "item_end",
        {"node_id": "docs", "path": ("docs",), "index": 0, "result": None, "error": None},
    )
    assert [fields["path"] for name, fields in item_events if name == "node_start"] == [
        ("docs",),
        ("docs", 0, "tag"),
        ("docs", 1, "tag"),
    ]


def test_async_batch_graph_reports_exactly_what_the_sync_one_does() -> None:
    sync_shared: dict[str, Any] = {"docs": ["d0", "d1", "d2"]}
    async_shared: dict[str, Any] = {"docs": ["d0", "d1", "d2"]}
    assert run_async(async_shared).events == run_sync(sync_shared).events
    assert async_shared["tags"] == sync_shared["tags"] == ["d0", "d1", "d2"]


def test_a_failing_parameter_set_is_reported_the_same_way_by_both() -> None:
    reports = []
    for run in (run_sync, run_async):
        shared: dict[str, Any] = {"docs": ["d0", "d1", "d2"], "fail_on": "d1"}
        recorder = Recorder()
        with pytest.raises(ValueError, match="cannot tag d1"):
            if run is run_sync:
                Graph(start=Docs(start=Tag(node_id="tag"), node_id="docs"), name="top").run(
                    shared, listeners=[recorder]
                )
            else:
                graph = AsyncGraph(start=AsyncDocs(start=AsyncTag(node_id="tag"), node_id="docs"), name="top")
                asyncio.run(graph.run_async(shared, listeners=[recorder]))
        assert shared["tags"] == ["d0"]  # the set after the failure never started
        reports.append(recorder.events)
    assert reports[0] == reports[1]
    item_ends = [fields for name, fields in reports[0] if name == "item_end"]
    assert [(fields["index"], fields["error"]) for fields in item_ends] == [
        (0, None),
        (1, "ValueError('cannot tag d1')"),
    ]


@pytest.mark.parametrize("run", RUNS)
def test_resuming_skips_the_finished_parameter_sets(run: Any) -> None:
    shared: dict[str, Any] = {"docs": ["d0", "d1", "d2", "d3"]}
    events = run(shared, resume=ResumePoint(["docs", 2, "tag"])).events
    assert shared["tags"] == ["d2", "d3"]
    assert [fields["index"] for name, fields in events if name == "item_start"] == [2, 3]


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("index", [3, 7])
def test_a_resume_index_past_the_parameter_sets_is_refused(run: Any, index: int) -> None:
    shared: dict[str, Any] = {"docs": ["d0", "d1", "d2"]}
    with pytest.raises(GraphExecutionError) as caught:
        run(shared, resume=ResumePoint(["docs", index, "tag"]), run_id="r-5")
    name = "Docs" if run is run_sync else "AsyncDocs"
    assert str(caught.value) == (
        f"cannot resume run 'r-5' at parameter set {index} of batch graph {name!r}: its prep returned 3 "
        "set(s) this time. prep must return the same sets when a run resumes; restore them or start a "
        "new run."
    )
    assert caught.value.graph == name
    assert "tags" not in shared


@pytest.mark.parametrize("run", RUNS)
def test_resuming_at_the_last_parameter_set_runs_only_it(run: Any) -> None:
    shared: dict[str, Any] = {"docs": ["d0", "d1", "d2"]}
    run(shared, resume=ResumePoint(["docs", 2, "tag"]))
    assert shared["tags"] == ["d2"]
