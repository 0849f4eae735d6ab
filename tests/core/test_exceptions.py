"""The exception classes keep their message and their context attributes, and stay catchable as the
built-in types PocketFlow and 0.3 code catch."""

from __future__ import annotations

from typing import Any

import pytest

from kaygraph.core import exceptions as errors

# class, keyword context, the built-in bases callers rely on
CONTEXT: list[tuple[type[Exception], dict[str, Any], tuple[type[BaseException], ...]]] = [
    (errors.NodeExecutionError, {"node_id": "n"}, (RuntimeError,)),
    (errors.GraphExecutionError, {"graph": "g", "node_id": "n"}, (RuntimeError,)),
    (errors.ValidationError, {"node_id": "n", "stage": "input"}, (ValueError,)),
    (errors.RunCancelled, {"reason": "why", "node_id": "n", "run_id": "r"}, ()),
    (errors.GraphReferenceError, {"ref": "pkg.mod:attr"}, (ImportError,)),
    (
        errors.ConfigurationError,
        {"key": "ui.port", "value": 99999, "source": "env KAYGRAPH_UI_PORT"},
        (ValueError,),
    ),
    (errors.MissingExtraError, {"extra": "persistence", "name": "redis"}, (ImportError,)),
    (errors.PluginError, {"plugin": "hello"}, ()),
    (errors.PersistenceError, {"run_id": "r"}, ()),
    (errors.RunNotFoundError, {"run_id": "r"}, (KeyError,)),
    (errors.RunLockedError, {"run_id": "r"}, ()),
    (errors.CheckpointCorruptError, {"run_id": "r"}, ()),
    (errors.SerializationError, {"run_id": "r", "key_path": "shared['a'][0]"}, (TypeError,)),
    (errors.ResumeError, {"run_id": "r"}, ()),
]


@pytest.mark.parametrize(("cls", "context", "bases"), CONTEXT, ids=[row[0].__name__ for row in CONTEXT])
def test_context_is_kept_as_attributes_and_the_message_as_given(
    cls: type[Exception], context: dict[str, Any], bases: tuple[type[BaseException], ...]
) -> None:
    error = cls("the message", **context)
    for name, value in context.items():
        assert getattr(error, name) == value, name
    assert error.args[0] == "the message"
    if cls is not errors.ValidationError:  # its str() names the node, below
        assert str(error) == "the message"
    assert isinstance(error, errors.KayGraphError)
    for base in bases:
        assert isinstance(error, base)


@pytest.mark.parametrize(("cls", "context", "bases"), CONTEXT, ids=[row[0].__name__ for row in CONTEXT])
def test_context_defaults_to_none(
    cls: type[Exception], context: dict[str, Any], bases: tuple[type[BaseException], ...]
) -> None:
    error = cls("only a message")
    for name in context:
        assert getattr(error, name) is None, name
    assert error.args[0] == "only a message"


def test_persistence_errors_share_one_base() -> None:
    for cls in (
        errors.RunNotFoundError,
        errors.RunLockedError,
        errors.CheckpointCorruptError,
        errors.SerializationError,
        errors.ResumeError,
    ):
        assert issubclass(cls, errors.PersistenceError)


def test_run_not_found_is_not_quoted_like_a_key_error() -> None:
    assert str(errors.RunNotFoundError("no run 'x'")) == "no run 'x'"


def test_validation_error_names_the_node_and_stage_when_known() -> None:
    assert str(errors.ValidationError("too long")) == "too long"
    assert str(errors.ValidationError("too long", node_id="summarize", stage="output")) == (
        "node 'summarize' rejected its output: too long"
    )
    assert str(errors.ValidationError("too long", node_id="summarize")) == (
        "node 'summarize' rejected its data: too long"
    )
    assert errors.ValidationError("too long", node_id="x").message == "too long"


def test_definition_errors_are_value_errors_and_invalid_actions_type_errors() -> None:
    assert issubclass(errors.GraphDefinitionError, ValueError)
    assert issubclass(errors.InvalidActionError, errors.GraphDefinitionError)
    assert issubclass(errors.InvalidActionError, TypeError)
    assert issubclass(errors.ListenerError, TypeError)


def test_install_hints_are_quoted_for_shells_that_glob_brackets() -> None:
    assert errors.install_hint("persistence") == "pip install 'kaygraph[persistence]'"
    assert errors.install_hint("ui", quoted=False) == "pip install kaygraph[ui]"
