"""The spec's public contract (phase 1): names, return values and catchable error types."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import kaygraph
from kaygraph.core.exceptions import (
    ExtensionError,
    ExtensionRequiredError,
    MissingExtraError,
    PluginError,
    UnknownExtensionError,
    UnknownPluginError,
)
from kaygraph.ext.base import Extension, ExtensionRegistry, get_extension
from kaygraph.plugins import PluginRegistry, load_plugin
from kaygraph.utils.imports import LazyLoader, require_extension


def test_framework_config_takes_config_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"log_level": "WARNING"}))
    assert kaygraph.config.Config(config_file=str(path)).get("log_level") == "WARNING"


class Echo(Extension):
    name = "echo"
    version = "1.0"

    def initialize(self) -> None:
        self.ready = True


def test_registry_get_returns_none_for_unknown_names_and_require_raises() -> None:
    registry = ExtensionRegistry()
    registry.register(Echo())

    assert registry.get("nope") is None
    assert get_extension("no_such_extension") is None
    echo = registry.get("echo")
    assert echo is not None and echo.ready
    with pytest.raises(UnknownExtensionError, match=r"'ech'.*Did you mean 'echo'") as caught:
        registry.require("ech")
    assert isinstance(caught.value, (LookupError, ExtensionError))


def test_a_known_but_missing_extension_still_explains_how_to_get_it(planned: str) -> None:
    with pytest.raises(MissingExtraError, match=planned):
        get_extension(planned)


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> str:
    """A built-in extension name with no package in this build (the state of a planned one)."""
    from kaygraph import ext

    monkeypatch.setitem(ext.EXTENSIONS, "zz_planned", "a stand-in for an extension not shipped yet")
    return "zz_planned"


def test_loading_an_unknown_plugin_is_a_lookup_error_and_a_value_error() -> None:
    registry = PluginRegistry(group="kaygraph.test_no_such_group", env={}, path=[])
    for error in (UnknownPluginError, PluginError, LookupError, ValueError):
        with pytest.raises(error, match="No KayGraph plugin named 'kaygraph_surely_absent'"):
            registry.load("kaygraph_surely_absent")
    with pytest.raises(LookupError):
        load_plugin("kaygraph_surely_absent_too")


def test_lazy_loader_of_an_extension_explains_like_the_attribute() -> None:
    with pytest.raises(UnknownExtensionError, match=r"no KayGraph extension named 'nope'.*Known extensions"):
        LazyLoader("kaygraph.ext.nope").anything  # noqa: B018
    with pytest.raises(ImportError):  # still what `import kaygraph.ext.nope` would raise
        LazyLoader("kaygraph.ext.nope").anything  # noqa: B018

    persistence = LazyLoader("kaygraph.ext.persistence")
    assert persistence.durable is kaygraph.ext.persistence.durable


def test_lazy_loader_of_a_missing_extension_gives_the_same_message_as_kaygraph_ext(planned: str) -> None:
    with pytest.raises(MissingExtraError) as via_attribute:
        getattr(kaygraph.ext, planned)
    with pytest.raises(MissingExtraError) as via_loader:
        LazyLoader(f"kaygraph.ext.{planned}").anything  # noqa: B018
    assert str(via_loader.value) == str(via_attribute.value)


def test_require_extension_error_is_a_runtime_error_and_an_import_error(planned: str) -> None:
    @require_extension(planned)
    def needs_it() -> str:
        return "ran"

    @require_extension(planned)
    async def needs_it_async() -> str:
        return "ran"

    for error in (ExtensionRequiredError, RuntimeError, ImportError, MissingExtraError):
        with pytest.raises(error, match=rf"'{planned}'"):
            needs_it()
        with pytest.raises(error, match=rf"'{planned}'"):
            asyncio.run(needs_it_async())

    @require_extension("persistence")
    def durable_ok() -> str:
        return "ran"

    assert durable_ok() == "ran"
