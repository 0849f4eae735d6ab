"""InteractiveGraph / AsyncInteractiveGraph loops and the user-input nodes (sync and async)."""

from __future__ import annotations

import asyncio
import builtins

import pytest

from kaygraph import AsyncInteractiveGraph, AsyncNode, InteractiveGraph, InteractiveNode, Node, UserInputNode
from kaygraph.core.exceptions import GraphDefinitionError


class Tick(Node):
    """Counts iterations, leaves a transient key, exits when shared["n"] reaches shared["stop"]."""

    def post(self, shared, prep_res, exec_res):
        assert "_scratch" not in shared  # cleared between iterations
        shared["n"] = shared.get("n", 0) + 1
        shared["_scratch"] = shared["n"]
        if shared["n"] >= shared.get("stop", 10**9):
            shared["_exit"] = True


def test_loop_runs_until_the_exit_flag_and_keeps_the_callers_store() -> None:
    shared = {"stop": 3}
    result = InteractiveGraph(Tick()).run_interactive(shared)

    assert result is shared
    assert shared == {"stop": 3, "n": 3, "_scratch": 3}  # exit flag removed, last transient kept (0.3)


def test_loop_stops_after_max_iterations_and_clears_transient_keys() -> None:
    result = InteractiveGraph(Tick()).run_interactive(max_iterations=4)
    assert result == {"n": 4}
    assert InteractiveGraph(Tick()).run_interactive({}, max_iterations=0) == {}


def test_transient_keys_can_be_kept_and_the_exit_key_renamed() -> None:
    class Keep(Node):
        def post(self, shared, prep_res, exec_res):
            shared["_seen"] = shared.get("_seen", 0) + 1
            shared["done"] = shared["_seen"] == 2

    result = InteractiveGraph(Keep()).run_interactive({}, exit_key="done", clear_transient=False)
    assert result == {"_seen": 2}


def test_an_error_ends_the_loop() -> None:
    class Fail(Node):
        def exec(self, prep_res):
            raise RuntimeError("broken iteration")

    with pytest.raises(RuntimeError, match="broken iteration"):
        InteractiveGraph(Fail()).run_interactive({}, max_iterations=5)
    with pytest.raises(GraphDefinitionError, match="max_iterations must be an int"):
        InteractiveGraph(Tick()).run_interactive({}, max_iterations=-1)


class AsyncTick(AsyncNode):
    async def post_async(self, shared, prep_res, exec_res):
        await asyncio.sleep(0)
        shared["n"] = shared.get("n", 0) + 1
        shared["_scratch"] = True
        shared["_exit"] = shared["n"] == 2


def test_async_loop_also_clears_transient_keys_at_the_end() -> None:
    shared: dict = {}
    result = asyncio.run(AsyncInteractiveGraph(AsyncTick()).run_interactive_async(shared))

    assert result is shared and shared == {"n": 2}
    assert asyncio.run(AsyncInteractiveGraph(AsyncTick()).run_interactive_async(max_iterations=1)) == {"n": 1}


def test_parse_command_tells_commands_from_messages() -> None:
    parse = InteractiveNode().parse_command
    assert parse("/add  file.py more") == {"type": "command", "command": "add", "args": "file.py more"}
    assert parse("/help") == {"type": "command", "command": "help", "args": ""}
    assert parse("/") == {"type": "command", "command": "", "args": ""}
    assert parse("hello /there") == {"type": "message", "content": "hello /there"}


def test_user_input_node_drives_a_chat_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = iter(["hello", "/search cats", "/quit"])
    prompts = []

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr(builtins, "input", fake_input)

    class Echo(Node):
        def post(self, shared, prep_res, exec_res):
            shared.setdefault("log", []).append(("message", shared["user_message"]))

    class Command(Node):
        def post(self, shared, prep_res, exec_res):
            shared.setdefault("log", []).append((shared["last_command"], shared["command_args"]))

    ask = UserInputNode(prompt="you: ")
    ask - "message" >> Echo()
    ask - "command" >> Command()
    with pytest.warns(UserWarning, match="Graph ends: 'None' not found"):  # /quit routes nowhere, as in 0.3
        result = InteractiveGraph(ask).run_interactive({"_prompt": "first: "})

    assert result["log"] == [("message", "hello"), ("search", "cats")]
    assert prompts == ["first: ", "you: ", "you: "]  # _prompt is transient: used once
    assert "_exit" not in result and ask.node_id == "user_input"


def test_end_of_input_reads_as_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def closed(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr(builtins, "input", closed)
    node = InteractiveNode()
    assert node.get_user_input() == "/exit"
    shared = {"_last_parsed_input": node.parse_command("/exit")}
    assert node.handle_exit_command(shared) is True and shared["_exit"] is True
    assert node.handle_exit_command({"_last_parsed_input": node.parse_command("/stay")}) is False
    assert node.handle_exit_command({"_last_parsed_input": node.parse_command("/bye")}, ["bye"]) is True
