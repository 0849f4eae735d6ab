"""``kaygraph runs list|show|delete`` (registered by kaygraph.ext.persistence.cli)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from kaygraph import Graph, Node
from kaygraph.ext.persistence import cli, durable


def main(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="kaygraph")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


class Fail(Node):
    def exec(self, prep_res: Any) -> Any:
        raise RuntimeError("planned")


def test_runs_list_show_delete(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Filters select among several runs of two graphs, every column holds the run's own value,
    newest first; show prints the metadata and each step in order; delete says what it did."""
    import json

    url = f"sqlite:///{tmp_path}/runs.db"
    with durable(Graph(Node(node_id="only"), name="demo"), url) as runner:
        runner.run({"a": 1}, run_id="demo-1")
        runner.run({"a": 2}, run_id="demo-2")
    with durable(Graph(Node(node_id="other"), name="other"), url) as runner:
        runner.run({}, run_id="other-1")
    with durable(Graph(Fail(node_id="boom"), name="demo"), url) as runner, pytest.raises(RuntimeError):
        runner.run({}, run_id="demo-failed")

    def listed(*options: str) -> list[list[str]]:
        assert main("runs", "--store", url, "list", *options) == 0
        return [line.split() for line in capsys.readouterr().out.splitlines()]

    rows = listed("--graph", "demo")
    assert [row[0] for row in rows] == ["demo-failed", "demo-2", "demo-1"]  # newest first, no "other"
    for row in rows:
        run_id, graph, status, steps, created = row[:5]
        assert graph == "demo" and created.startswith("created=20") and len(row) == 6
        assert (status, steps) == (
            ("failed", "steps=0") if run_id == "demo-failed" else ("succeeded", "steps=1")
        )
    assert [row[0] for row in listed("--status", "failed")] == ["demo-failed"]
    assert [row[0] for row in listed("--graph", "demo", "--status", "succeeded", "--limit", "1")] == [
        "demo-2"
    ]
    assert listed("--graph", "nothing")[0][:3] == ["no", "runs", "in"]
    assert main("runs", "--store", url, "list", "--graph", "other", "--json") == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert (record["run_id"], record["graph_name"], record["status"], record["steps"]) == (
        "other-1",
        "other",
        "succeeded",
        1,
    )

    assert main("runs", "--store", url, "show", "demo-1", "--state") == 0
    shown = capsys.readouterr().out.splitlines()
    fields = dict(line.split(None, 1) for line in shown if line and not line.startswith(("#", " ")))
    assert (fields["run_id"], fields["graph_name"], fields["status"], fields["steps"]) == (
        "demo-1",
        "demo",
        "succeeded",
        "1",
    )
    entries = [line.split()[1:3] for line in shown if line.startswith("#")]
    assert entries == [["start", "-"], ["step", "only"], ["end", "-"]]
    states = [line.strip() for line in shown if line.startswith("        ")]
    assert states == ["a = 1", "(no change)", "(no change)"]  # start, the node, the end

    assert main("runs", "--store", url, "delete", "demo-1") == 0
    assert capsys.readouterr().out == "deleted run 'demo-1'\n"
    assert main("runs", "--store", url, "delete", "demo-1") == 1
    assert capsys.readouterr().err == f"kaygraph: error: no run 'demo-1' in {url}\n"
    assert [row[0] for row in listed("--graph", "demo")] == ["demo-failed", "demo-2"]


def test_runs_show_decodes_pickles_only_when_asked(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from kaygraph.core.exceptions import PersistenceError

    url = f"sqlite:///{tmp_path}/runs.db"
    with durable(Graph(Node(node_id="only"), name="demo"), url, serializer="pickle") as runner:
        runner.run({"a": 1}, run_id="pickled")
    with pytest.raises(PersistenceError, match=r"'pickle' serializer.*--serializer pickle"):
        main("runs", "--store", url, "show", "pickled", "--state")
    capsys.readouterr()
    assert main("runs", "--store", url, "show", "pickled", "--state", "--serializer", "pickle") == 0
    assert "        a = 1\n" in capsys.readouterr().out


def test_runs_show_lists_steps_without_needing_the_classes_in_the_state(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib
    import sys

    from kaygraph.core.exceptions import KayGraphError

    (tmp_path / "kg_cli_models.py").write_text(
        "import dataclasses\n\n@dataclasses.dataclass\nclass Doc:\n    pages: int\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    models = importlib.import_module("kg_cli_models")
    url = f"sqlite:///{tmp_path}/runs.db"
    with durable(Graph(Node(node_id="only"), name="demo"), url) as runner:
        runner.run({"doc": models.Doc(3)}, run_id="with-class")
    monkeypatch.delitem(sys.modules, "kg_cli_models")  # like a shell with no user code imported
    assert main("runs", "--store", url, "show", "with-class") == 0
    assert "only" in capsys.readouterr().out
    with pytest.raises(KayGraphError, match="kg_cli_models"):
        main("runs", "--store", url, "show", "with-class", "--state")


class Leaky(Node):
    """Puts secrets in the state, then fails with a bearer token in its message (once)."""

    failures = 1

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["config"] = {"api_key": "sk-live-abcdefgh12345678", "password": "hunter2", "user": "ann"}
        shared["note"] = "call with Bearer tok-secret-value-99"
        if Leaky.failures:
            Leaky.failures -= 1
            raise RuntimeError("upstream refused Authorization: Bearer tok-secret-value-99")
        return None


def leaky_graph() -> Graph:
    """Loaded by reference (``kaygraph runs resume``)."""
    return Graph(Leaky(node_id="leaky"), name="leaky")


def test_every_runs_command_takes_store_after_the_subcommand(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with durable(Graph(Node(node_id="only"), name="demo"), store_url) as runner:
        runner.run({"a": 1}, run_id="demo-1")
    assert main("runs", "list", "--store", store_url) == 0
    assert "demo-1" in capsys.readouterr().out
    assert main("runs", "show", "demo-1", "--store", store_url) == 0
    assert "succeeded" in capsys.readouterr().out
    assert main("runs", "--store", "memory://elsewhere", "list", "--store", store_url) == 0
    assert "demo-1" in capsys.readouterr().out  # the one after the subcommand wins
    assert main("runs", "delete", "demo-1", "--store", store_url) == 0
    assert main("runs", "list", "--store", store_url) == 0
    assert capsys.readouterr().out.endswith(
        f"no runs in {store_url} (pass --store URL to read another store)\n"
    )


def test_runs_show_hides_secrets_unless_asked_and_resume_rebuilds_the_graph(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import kaygraph

    Leaky.failures = 1
    graph = kaygraph.load_graph("tests.ext.persistence.test_cli:leaky_graph")
    with durable(graph, store_url) as runner, pytest.raises(RuntimeError):
        runner.run({}, run_id="leaky-1")
    assert main("runs", "show", "leaky-1", "--state", "--store", store_url) == 0
    shown = capsys.readouterr().out
    assert "failed" in shown and "Bearer ***" in shown and "Traceback" in shown
    for secret in ("tok-secret-value-99", "sk-live-abcdefgh12345678", "hunter2"):
        assert secret not in shown
    assert main("runs", "show", "leaky-1", "--state", "--show-secrets", "--store", store_url) == 0
    assert "tok-secret-value-99" in capsys.readouterr().out
    assert main("runs", "list", "--json", "--store", store_url) == 0
    assert "tok-secret-value-99" not in capsys.readouterr().out
    # The run recorded where its graph comes from: the CLI rebuilds it and resumes the run.
    assert main("runs", "resume", "leaky-1", "--store", store_url) == 0
    assert capsys.readouterr().out == "run 'leaky-1' succeeded: 1 steps\n"  # no action: none was returned
    with durable(Graph(Node(node_id="only"), name="plain"), store_url) as runner:
        runner.run({}, run_id="plain-1")
    from kaygraph.core.exceptions import ResumeError

    with pytest.raises(ResumeError, match="--graph"):
        main("runs", "resume", "plain-1", "--store", store_url)
    assert (
        main(
            "runs",
            "resume",
            "plain-1",
            "--graph",
            "tests.ext.persistence.test_cli:leaky_graph",
            "--store",
            store_url,
        )
        == 0
    )
    assert capsys.readouterr().out == "run 'plain-1' succeeded (it had already finished): 1 steps\n"


def test_runs_list_since_limit_and_delete_force(
    new_store_url: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt
    import time

    url = new_store_url("memory")
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # runs created a day apart, no sleeping
    with durable(Graph(Node(node_id="only"), name="dated"), url, ttl=None) as runner:  # kept a day later
        runner.run({}, run_id="old")
        clock[0] += 86400
        runner.run({}, run_id="new")
    monkeypatch.undo()
    between = dt.datetime.fromtimestamp(1_700_000_000.0 + 43200).isoformat()

    assert main("runs", "--store", url, "list", "--since", between) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["new"]
    assert main("runs", "--store", url, "list", "--until", between) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["old"]
    with pytest.raises(SystemExit):
        main("runs", "--store", url, "list", "--limit", "many")
    assert "argument --limit: invalid int value: 'many'" in capsys.readouterr().err
    assert main("runs", "--store", url, "delete", "old", "--force") == 0
    assert capsys.readouterr().out == "deleted run 'old'\n"


def test_the_runs_help_describes_every_subcommand_and_the_pickle_risk(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapped help lines, whatever the terminal
    with pytest.raises(SystemExit):
        main("runs", "--help")
    overview = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    for line in (
        "list runs, newest first",
        "show a run's metadata and its steps",
        "resume continue a run (crashed, failed, cancelled or forked)",
        "delete erase every trace of a run",
    ):
        assert line in overview
    with pytest.raises(SystemExit):
        main("runs", "list", "--help")
    assert "--graph GRAPH only runs of this graph name" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main("runs", "show", "--help")
    assert "loading a pickle runs code, so use it only for a store you trust" in " ".join(
        capsys.readouterr().out.split()
    )


class Chat(Node):
    """Appends a long message, retitles, then drops the draft: one change of each kind."""

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        shared["messages"].append({"text": "x" * 300})
        shared["title"] = f"turn {len(shared['messages'])}"
        shared.pop("draft", None)
        return "again" if len(shared["messages"]) < 2 else "done"


def test_runs_show_state_prints_what_each_step_changed_shortened_unless_full(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/runs.db"
    chat = Chat(node_id="chat")
    chat - "again" >> chat
    chat - "done" >> Node(node_id="end")
    with durable(Graph(chat, name="chat"), url) as runner:
        runner.run({"messages": [], "title": "new", "draft": "d", "password": "hunter2"}, run_id="c")
    assert main("runs", "--store", url, "show", "c", "--state") == 0
    shown = capsys.readouterr().out
    changes = [line.strip() for line in shown.splitlines() if line.startswith("        ")]
    cut = "[{'text': '" + "x" * (cli.SHOWN_CHARS - len("[{'text': '") - 3) + "..."
    assert changes == [
        "messages = []",
        "title = 'new'",
        "draft = 'd'",
        "password = '***'",  # secrets stay hidden
        f"messages += {cut}",
        "title = 'turn 1'",
        "draft deleted",
        f"messages += {cut}",
        "title = 'turn 2'",
        "(no change)",  # the end node
        "(no change)",  # the end record
    ]
    assert "--full prints them whole" in shown and "hunter2" not in shown
    assert main("runs", "--store", url, "show", "c", "--state", "--full") == 0
    shown = capsys.readouterr().out
    assert f"messages += [{{'text': '{'x' * 300}'}}]" in shown and "shortened" not in shown


def test_info_names_the_runs_store_as_a_url_that_store_accepts(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaygraph.config import _reset_for_tests
    from kaygraph.info import info_lines

    monkeypatch.setenv("KAYGRAPH_PERSISTENCE_DIRECTORY", str(tmp_path / "state"))
    with durable(Graph(Node(node_id="only"), name="demo")) as runner:  # the configured store
        runner.run({}, run_id="configured-1")

    def persistence_store() -> str:
        lines = info_lines()
        start = next(index for index, line in enumerate(lines) if line.startswith("  persistence "))
        return next(line for line in lines[start:] if line.strip().startswith("store: ")).strip()

    url = persistence_store().removeprefix("store: ").split(" (")[0]
    assert url == f"sqlite:///{tmp_path.as_posix()}/state/runs.db"
    assert main("runs", "list", "--store", url) == 0
    assert capsys.readouterr().out.startswith("configured-1 ")
    monkeypatch.setenv("KAYGRAPH_PERSISTENCE_URL", "postgresql://kay:s3cret@127.0.0.1:5432/runs")
    _reset_for_tests()  # the environment is read once per process
    assert persistence_store() == "store: postgresql://kay:***@127.0.0.1:5432/runs"


def test_runs_list_names_the_configured_sqlite_file_when_it_finds_no_runs(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAYGRAPH_PERSISTENCE_DIRECTORY", str(tmp_path / "state"))
    assert main("runs", "list") == 0
    assert capsys.readouterr().out == (
        f"no runs in sqlite:///{tmp_path / 'state' / 'runs.db'} (pass --store URL to read another store)\n"
    )
