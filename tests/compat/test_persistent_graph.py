"""PersistentGraph: 0.3's JSON checkpoints before every node, resume after a crash."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from kaygraph import Node, PersistentGraph
from kaygraph.core.exceptions import CheckpointCorruptError
from kaygraph.persistence import decode, encode


class Step(Node):
    def prep(self, shared):
        return shared["count"]

    def exec(self, count):
        return count + 1

    def post(self, shared, prep_res, exec_res):
        shared["count"] = exec_res
        shared.setdefault("done", []).append(self.node_id)


class Crash(Step):
    crash = True

    def exec(self, count):
        if Crash.crash:
            raise ConnectionError("the machine fell over")
        return super().exec(count)


def chain(*nodes: Node) -> Node:
    for left, right in itertools.pairwise(nodes):
        left >> right
    return nodes[0]


def test_run_returns_the_store_and_writes_one_checkpoint_per_node(tmp_path: Path) -> None:
    graph = PersistentGraph(
        chain(Step(node_id="a"), Step(node_id="b"), Step(node_id="c")), checkpoint_dir=tmp_path
    )
    shared = {"count": 0}

    assert graph.run(shared) is shared and shared["count"] == 3
    files = sorted(path.name for path in tmp_path.glob("checkpoint_*.json"))
    assert files == ["checkpoint_000000.json", "checkpoint_000001.json", "checkpoint_000002.json"]
    records = [json.loads((tmp_path / name).read_text()) for name in files]
    assert [(r["counter"], r["node_id"], r["shared"]["count"]) for r in records] == [
        (0, "a", 0),
        (1, "b", 1),
        (2, "c", 2),
    ]
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["latest"] == str(tmp_path / "checkpoint_000002.json") and latest["node_id"] == "c"
    assert [c["node_id"] for c in graph.list_checkpoints()] == ["a", "b", "c"]


def test_crash_then_resume_in_a_new_process_continues_at_the_failed_node(tmp_path: Path) -> None:
    def build() -> PersistentGraph:
        return PersistentGraph(
            chain(Step(node_id="a"), Crash(node_id="b"), Step(node_id="c")), checkpoint_dir=tmp_path
        )

    Crash.crash = True
    with pytest.raises(ConnectionError):
        build().run({"count": 0})

    Crash.crash = False
    restarted = build()  # what a new process would do
    shared, node_id = restarted.resume_from_checkpoint()
    assert (shared, node_id) == ({"count": 1, "done": ["a"]}, "b")
    result = restarted.resume_and_run()
    assert result == {"count": 3, "done": ["a", "b", "c"]}
    # the restarted graph numbered its checkpoints after the old ones instead of overwriting them
    assert [c["counter"] for c in restarted.list_checkpoints()] == [0, 1, 2, 3]


def test_enable_disable_and_clear(tmp_path: Path) -> None:
    graph = PersistentGraph(Step())
    graph.run({"count": 0})
    assert graph.list_checkpoints() == []

    graph.enable_checkpointing(tmp_path / "new" / "folder")
    graph.run({"count": 0})
    assert len(graph.list_checkpoints()) == 1
    graph.disable_checkpointing()
    graph.run({"count": 0})
    assert len(graph.list_checkpoints()) == 1

    graph.clear_checkpoints()
    assert list((tmp_path / "new" / "folder").glob("*.json")) == []


def test_loops_checkpoint_every_step(tmp_path: Path) -> None:
    class Check(Node):
        def post(self, shared, prep_res, exec_res):
            return "again" if shared["count"] < 3 else "stop"

    step, check = Step(), Check()
    step >> check
    check - "again" >> step
    graph = PersistentGraph(step, checkpoint_dir=tmp_path)
    with pytest.warns(UserWarning, match="Graph ends"):
        graph.run({"count": 0})
    assert [c["node_id"] for c in graph.list_checkpoints()] == ["Step", "Check"] * 3


def test_special_values_round_trip_in_0_3s_format(tmp_path: Path) -> None:
    class Point:
        def __init__(self) -> None:
            self.x, self.y = 1, (2, 3)

    shared = {"path": Path("/tmp/x"), "tags": {"a"}, "nested": {"paths": [Path("p")]}, "point": Point()}
    graph = PersistentGraph(checkpoint_dir=tmp_path)
    graph.save_checkpoint(shared, "somewhere")
    restored, node_id = graph.resume_from_checkpoint()

    assert node_id == "somewhere"
    assert restored == {
        "path": Path("/tmp/x"),
        "tags": {"a"},
        "nested": {"paths": [Path("p")]},
        "point": {"x": 1, "y": [2, 3]},
    }
    assert encode({"s": {1}})["s"] == {"__type__": "set", "value": [1]}
    assert decode({"__type__": "Path", "value": "q"}) == Path("q")


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No checkpoint directory configured"):
        PersistentGraph().resume_from_checkpoint()
    with pytest.raises(ValueError, match="No checkpoints found"):
        PersistentGraph(checkpoint_dir=tmp_path).resume_from_checkpoint()
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        PersistentGraph(checkpoint_dir=tmp_path).resume_from_checkpoint(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"node_id": ')
    with pytest.raises(CheckpointCorruptError, match=r"broken.json:1:\d+: not valid JSON"):
        PersistentGraph().resume_from_checkpoint(broken)
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointCorruptError, match="not a PersistentGraph checkpoint"):
        PersistentGraph().resume_from_checkpoint(tmp_path / "other.json")


def test_resume_at_a_node_the_graph_no_longer_has_names_its_nodes(tmp_path: Path) -> None:
    graph = PersistentGraph(Step(node_id="a"), checkpoint_dir=tmp_path)
    graph.save_checkpoint({"count": 0}, "gone")
    with pytest.raises(
        ValueError, match=r"Cannot find node 'gone' to resume from: this graph's nodes are \['a'\]"
    ):
        graph.resume_and_run()
    assert graph._find_node_by_id("a") is graph.start_node


def test_a_checkpoint_that_cannot_be_written_fails_the_run(tmp_path: Path) -> None:
    graph = PersistentGraph(Step(), checkpoint_dir=tmp_path)
    with pytest.raises(TypeError):
        graph.run({"count": 0, "bad": {("tuple", "key"): 1}})  # JSON cannot have tuple keys


def test_checkpoints_in_0_3s_layout_are_resumed(tmp_path: Path) -> None:
    """A folder as a 0.3 process left it: numbered checkpoint, ``latest.json`` with an absolute path."""
    checkpoint = tmp_path / "checkpoint_000004.json"
    checkpoint.write_text(
        json.dumps(
            {
                "timestamp": 1700000000.0,
                "counter": 4,
                "node_id": "b",
                "shared": {"count": 1, "done": ["a"], "tags": {"__type__": "set", "value": ["x"]}},
            }
        )
    )
    (tmp_path / "latest.json").write_text(
        json.dumps({"latest": str(checkpoint), "timestamp": 1700000000.0, "node_id": "b"})
    )
    Crash.crash = False
    graph = PersistentGraph(
        chain(Step(node_id="a"), Crash(node_id="b"), Step(node_id="c")), checkpoint_dir=tmp_path
    )

    result = graph.resume_and_run()

    assert result == {"count": 3, "done": ["a", "b", "c"], "tags": {"x"}}
    assert [c["counter"] for c in graph.list_checkpoints()] == [4, 5, 6]  # numbering goes on


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_unusable_checkpoint_dir_names_the_folder(tmp_path: Path, where: str) -> None:
    """An uncreatable checkpoint_dir raises a KayGraph error naming it (still an OSError, as in 0.3)."""
    from kaygraph.core.exceptions import PersistenceError

    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    folder = blocker if where == "file" else blocker / "checkpoints"
    with pytest.raises(PersistenceError) as caught:
        PersistentGraph(Node(), checkpoint_dir=folder)
    assert isinstance(caught.value, OSError)
    message = str(caught.value)
    assert repr(str(folder)) in message
    assert "checkpoint_dir" in message and "writ" in message
    assert not (tmp_path / "taken" / "checkpoints").exists()
