"""A listener is checked when it is attached: the exact message for each way it can be wrong, and
hooks set on an instance are checked even when its class already passed."""

from __future__ import annotations

from typing import Any

import pytest

from kaygraph import Graph, Node, RunListener, add_listener
from kaygraph.core.events import EVENTS
from kaygraph.core.exceptions import ListenerError

KNOWN = ", ".join(EVENTS)


def attach(listener: Any) -> dict[str, Any]:
    """Run a one-node graph with ``listener``; the shared store shows whether the node ran."""
    shared: dict[str, Any] = {}

    class Mark(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["ran"] = True

    Graph(start=Mark()).run(shared, listeners=[listener])
    return shared


def test_a_misspelled_hook_is_named_with_the_closest_one_and_the_list() -> None:
    class Typo(RunListener):
        def on_node_strat(self, **kwargs: Any) -> None: ...

    with pytest.raises(ListenerError) as caught:
        attach(Typo())
    assert str(caught.value) == (
        f"listener Typo has unknown hook 'on_node_strat'. Did you mean 'on_node_start'? Known hooks: {KNOWN}."
    )


def test_an_unknown_hook_with_no_close_match_gets_no_guess() -> None:
    class Odd(RunListener):
        def on_zzz(self, **kwargs: Any) -> None: ...

    with pytest.raises(ListenerError) as caught:
        attach(Odd())
    assert str(caught.value) == f"listener Odd has unknown hook 'on_zzz'. Known hooks: {KNOWN}."


def test_an_object_without_any_hook_is_not_a_listener() -> None:
    class Plain:
        def __repr__(self) -> str:
            return "<Plain>"

    with pytest.raises(ListenerError) as caught:
        add_listener(Plain())
    assert str(caught.value) == (
        f"<Plain> is not a listener: it has none of the hooks {KNOWN}. "
        "Subclass kaygraph.RunListener and override the hooks you need."
    )


def test_a_hook_that_is_not_callable_is_named() -> None:
    class Broken:
        on_node_start = 3

    with pytest.raises(ListenerError) as caught:
        attach(Broken())
    assert str(caught.value) == "listener Broken.on_node_start is not callable"


def test_a_hook_without_kwargs_is_refused_with_the_signature_to_write() -> None:
    class Strict:
        def on_run_end(
            self, *, run: Any, graph: Any, shared: Any, action: Any, error: Any, duration: Any
        ) -> None:
            pass

    with pytest.raises(ListenerError) as caught:
        attach(Strict())
    assert str(caught.value) == (
        "listener hook Strict.on_run_end must accept **kwargs so that new event fields do not break it: "
        "def on_run_end(self, *, run, ..., **kwargs)"
    )


def test_hooks_set_on_an_instance_are_checked_even_after_its_class_passed() -> None:
    class Fine(RunListener):
        def on_node_end(self, **kwargs: Any) -> None: ...

    assert attach(Fine()) == {"ran": True}  # the class is now known to be valid
    patched = Fine()
    patched.on_node_strat = lambda **kwargs: None  # type: ignore[attr-defined]
    with pytest.raises(ListenerError, match="unknown hook 'on_node_strat'"):
        attach(patched)
    strict = Fine()
    strict.on_node_end = lambda node_id: None  # type: ignore[method-assign]
    with pytest.raises(ListenerError, match=r"Fine\.on_node_end must accept \*\*kwargs"):
        attach(strict)


def test_an_instance_with_only_instance_hooks_is_a_listener() -> None:
    calls: list[str] = []

    class Bare:
        pass

    listener = Bare()
    listener.on_node_start = lambda **kwargs: calls.append(kwargs["node_id"])  # type: ignore[attr-defined]
    assert attach(listener) == {"ran": True}
    assert calls == ["Mark"]


def test_a_refused_listener_stops_the_run_before_any_node() -> None:
    class Typo(RunListener):
        def on_run_strat(self, **kwargs: Any) -> None: ...

    shared: dict[str, Any] = {}

    class Mark(Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
            shared["ran"] = True

    with pytest.raises(ListenerError):
        Graph(start=Mark()).run(shared, listeners=[Typo()])
    assert shared == {}
