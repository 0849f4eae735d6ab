"""One extension registry: kaygraph.ext's catalogue (kaygraph info, status, check_name) is the
global registry's view, so a third-party extension registered there is listed and usable."""

from __future__ import annotations

import pytest

from kaygraph import ext
from kaygraph.core.exceptions import UnknownExtensionError
from kaygraph.ext.base import (
    Extension,
    ExtensionRegistry,
    PackageExtension,
    get_extension,
    register_extension,
    registry,
)


class Audit(Extension):
    """Audit trail of every run (a third-party extension)."""

    name = "audit"
    version = "0.1"
    started = 0

    def initialize(self) -> None:
        Audit.started += 1


@pytest.fixture
def audit():
    extension = register_extension(Audit())
    yield extension
    if "audit" in registry:
        registry.unregister("audit")


def test_a_registered_third_party_extension_joins_the_catalogue(audit):
    assert ext.EXTENSIONS["audit"] == "Audit trail of every run (a third-party extension)."
    ext.check_name("audit")
    status = ext.status("audit")
    assert status.installed and status.usable and status.state == "installed"
    assert ext.status("audit", refresh=True).installed
    assert "audit" in [item.name for item in ext.statuses()]
    assert get_extension("audit") is audit and Audit.started == 1
    ext.require("audit")


def test_unregistering_removes_it_and_built_ins_stay(audit):
    registry.unregister("audit")
    assert "audit" not in ext.EXTENSIONS
    with pytest.raises(UnknownExtensionError, match="no KayGraph extension named 'audit'"):
        ext.check_name("audit")
    assert get_extension("audit") is None
    assert {"persistence", "observability", "ui"} <= set(ext.EXTENSIONS) and not ext.THIRD_PARTY


def test_private_registries_do_not_publish():
    private = ExtensionRegistry()
    private.register(Audit())
    assert "audit" not in ext.EXTENSIONS
    assert private.require("audit").name == "audit"


def test_a_package_extension_is_made_of_its_functions():
    calls = []
    extension = register_extension(
        PackageExtension(
            "audit",
            "0.2",
            describe=lambda: {"trail": "on"},
            initialize=lambda: calls.append("start"),
            shutdown=lambda: calls.append("stop"),
        )
    )
    try:
        assert repr(extension) == "<PackageExtension 'audit' 0.2 (not initialized)>"
        assert extension.describe() == {"trail": "on"} and calls == []  # describing starts nothing
        assert get_extension("audit") is extension and calls == ["start"]
        assert get_extension("audit") is extension and calls == ["start"]  # once
        extension.shutdown()  # what registry.shutdown_all() calls (not run here: it stops them all)
        assert calls == ["start", "stop"]
    finally:
        registry.unregister("audit")


@pytest.mark.parametrize("name", ["persistence", "scheduler", "ui", "distributed", "observability"])
def test_kaygraphs_own_packages_register_package_extensions(name):
    __import__(f"kaygraph.ext.{name}")

    extension = registry.peek(name)

    assert isinstance(extension, PackageExtension) and extension.name == name
    assert extension.describe()  # the lines kaygraph info shows
