"""Graphs that run in a loop until told to stop: chat loops, REPLs, event handlers (KayGraph 0.3's API).

``run_interactive`` runs the graph again and again on the same shared store until a node sets
``shared["_exit"] = True`` or ``max_iterations`` runs are done. Keys starting with ``_`` are
transient: they are cleared between iterations (the exit flag excepted).

    >>> from kaygraph import Node
    >>> from kaygraph.interactive import InteractiveGraph
    >>> class Count(Node):
    ...     def post(self, shared, prep_res, exec_res):
    ...         shared["n"] = shared.get("n", 0) + 1
    ...         shared["_exit"] = shared["n"] == 3
    >>> InteractiveGraph(Count()).run_interactive({})
    {'n': 3}

:class:`UserInputNode` reads a line from the terminal and routes on ``"command"`` (``/name args``)
or ``"message"``; ``/exit``, ``/quit`` and ``/q`` (and end of input) end the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from kaygraph.core import AsyncGraph, BaseNode, Graph

_log = logging.getLogger(__name__)

EXIT_COMMANDS = ("exit", "quit", "q")


def _loop(
    graph: BaseNode,
    shared: dict[str, Any] | None,
    max_iterations: int | None,
    exit_key: str,
    clear_transient: bool,
    clear_at_end: bool,
) -> Generator[dict[str, Any], None, dict[str, Any]]:
    """The interactive loop, shared by the sync and async drivers: yields the store before each
    run of the graph (the driver runs it), and returns the store when the loop ends."""
    if max_iterations is not None and (
        not isinstance(max_iterations, int) or isinstance(max_iterations, bool) or max_iterations < 0
    ):
        from kaygraph.core.exceptions import GraphDefinitionError

        raise GraphDefinitionError(f"max_iterations must be an int >= 0 or None, got {max_iterations!r}")
    store: dict[str, Any] = {} if shared is None else shared
    done = 0
    while max_iterations is None or done < max_iterations:
        yield store
        done += 1
        if store.get(exit_key):
            _log.info("%s: exit requested after %d iteration(s)", type(graph).__name__, done)
            break
        if clear_transient:
            _clear_transient(store, exit_key)
    if clear_at_end and clear_transient:
        _clear_transient(store, exit_key)
    store.pop(exit_key, None)
    return store


def _clear_transient(shared: dict[str, Any], exit_key: str) -> None:
    for key in [key for key in shared if isinstance(key, str) and key.startswith("_") and key != exit_key]:
        del shared[key]


class InteractiveGraph(Graph):
    """A :class:`~kaygraph.Graph` with :meth:`run_interactive`, its loop until an exit signal."""

    def __init__(self, start_node: BaseNode | None = None, **kwargs: Any) -> None:
        super().__init__(start_node, **kwargs)

    def run_interactive(
        self,
        shared: dict[str, Any] | None = None,
        max_iterations: int | None = None,
        exit_key: str = "_exit",
        clear_transient: bool = True,
    ) -> dict[str, Any]:
        """Run the graph until ``shared[exit_key]`` is true or ``max_iterations`` runs are done;
        returns the store (the one passed in, updated in place). An error ends the loop."""
        loop = _loop(self, shared, max_iterations, exit_key, clear_transient, clear_at_end=False)
        try:
            while True:
                self.run(next(loop))
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]


class AsyncInteractiveGraph(AsyncGraph):
    """An :class:`~kaygraph.AsyncGraph` with :meth:`run_interactive_async`. As in 0.3, transient
    keys are also cleared once the loop ends."""

    def __init__(self, start_node: BaseNode | None = None, **kwargs: Any) -> None:
        super().__init__(start_node, **kwargs)

    async def run_interactive_async(
        self,
        shared: dict[str, Any] | None = None,
        max_iterations: int | None = None,
        exit_key: str = "_exit",
        clear_transient: bool = True,
    ) -> dict[str, Any]:
        """The async twin of :meth:`InteractiveGraph.run_interactive`."""
        loop = _loop(self, shared, max_iterations, exit_key, clear_transient, clear_at_end=True)
        try:
            while True:
                await self.run_async(next(loop))
        except StopIteration as finished:
            return finished.value  # type: ignore[no-any-return]


class InteractiveNode(BaseNode):
    """Base for nodes that talk to a user: read a line, tell commands from messages."""

    def get_user_input(self, prompt: str = "> ") -> str:
        """A line from standard input, stripped; end of input or Ctrl-C reads as ``/exit``."""
        try:
            return input(prompt).strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return "/exit"

    def parse_command(self, user_input: str) -> dict[str, Any]:
        """``"/add a.py"`` -> ``{"type": "command", "command": "add", "args": "a.py"}``;
        anything else -> ``{"type": "message", "content": text}``."""
        if not user_input.startswith("/"):
            return {"type": "message", "content": user_input}
        parts = user_input[1:].split(maxsplit=1)
        return {
            "type": "command",
            "command": parts[0] if parts else "",
            "args": parts[1] if len(parts) > 1 else "",
        }

    def handle_exit_command(self, shared: dict[str, Any], exit_commands: list[str] | None = None) -> bool:
        """Set ``shared["_exit"]`` and return True when the last parsed input is an exit command."""
        last = shared.get("_last_parsed_input") or {}
        if last.get("type") == "command" and last.get("command") in (exit_commands or EXIT_COMMANDS):
            shared["_exit"] = True
            return True
        return False


class UserInputNode(InteractiveNode):
    """Prompts the user and routes: ``"command"`` (sets ``shared["last_command"]`` and
    ``shared["command_args"]``), ``"message"`` (sets ``shared["user_message"]``), or None after an
    exit command. ``shared["_prompt"]`` overrides the prompt for one iteration."""

    def __init__(self, prompt: str = "> ", node_id: str | None = None) -> None:
        super().__init__(node_id=node_id or "user_input")
        self.prompt = prompt

    def prep(self, shared: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": shared.get("_prompt", self.prompt)}

    def exec(self, prep_res: dict[str, Any]) -> dict[str, Any]:
        return self.parse_command(self.get_user_input(prep_res["prompt"]))

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: dict[str, Any]) -> str | None:
        shared["_last_parsed_input"] = exec_res
        if self.handle_exit_command(shared):
            return None
        if exec_res["type"] == "command":
            shared["last_command"] = exec_res["command"]
            shared["command_args"] = exec_res["args"]
            return "command"
        shared["user_message"] = exec_res["content"]
        return "message"


__all__ = ["AsyncInteractiveGraph", "InteractiveGraph", "InteractiveNode", "UserInputNode"]
