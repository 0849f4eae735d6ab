"""Plugins: `kaygraph_*` packages and entry points, found on first use, loaded once, and
controllable through KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD and KAYGRAPH_PLUGINS."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kaygraph.core.exceptions import PluginError, UnknownPluginError
from kaygraph.plugins import PluginInfo, PluginRegistry

TRACE = "kg_plugin_trace"  # a helper module the fake plugins append their lifecycle events to


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty site-packages directory on sys.path; modules imported from it are forgotten after."""
    directory = tmp_path / "site-packages"
    directory.mkdir()
    (directory / f"{TRACE}.py").write_text("events = []\n")
    monkeypatch.syspath_prepend(str(directory))
    before = set(sys.modules)
    yield directory
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        if str(directory) in str(getattr(module, "__file__", "") or ""):
            del sys.modules[name]


def events() -> list[str]:
    trace: list[str] = sys.modules[TRACE].events if TRACE in sys.modules else []
    return trace


def write(directory: Path, relative: str, source: str) -> None:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))


def package_plugin(site: Path, module: str, info: str, *, extra: str = "") -> None:
    """A ``kaygraph_*`` package whose plugin_info() returns ``info`` and whose initialize() is traced."""
    write(
        site,
        f"{module}/__init__.py",
        f"""
        import {TRACE}
        {TRACE}.events.append("import {module}")

        def plugin_info():
            return {info}

        def initialize():
            {TRACE}.events.append("initialize {module}")
        {extra}
        """,
    )


def entry_point_plugin(site: Path, dist: str, entry_points: str) -> None:
    """An installed distribution: a dist-info directory with METADATA and entry_points.txt."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def hello(site: Path) -> Path:
    package_plugin(site, "kaygraph_hello", '{"name": "hello", "version": "1.0", "description": "greets"}')
    return site


# -- discovery ---------------------------------------------------------------------------------


def test_package_plugin_is_discovered_on_first_use_not_before(hello: Path) -> None:
    registry = PluginRegistry()
    assert "kaygraph_hello" not in sys.modules  # constructing the registry looks at nothing

    infos = registry.list_plugins()

    assert [(info.name, info.version, info.description) for info in infos] == [("hello", "1.0", "greets")]
    assert events() == ["import kaygraph_hello"]  # imported to read plugin_info, not initialized
    assert str(hello / "kaygraph_hello") in registry.origin("kaygraph_hello")


def test_plugin_info_may_return_a_plugin_info(site: Path) -> None:
    package_plugin(
        site,
        "kaygraph_typed",
        'PluginInfo("typed", "2.0", requires=["kaygraph"])',
        extra="from kaygraph.plugins import PluginInfo",
    )

    info = PluginRegistry().get_plugin_info("typed")

    assert info == PluginInfo("typed", "2.0", requires=["kaygraph"])


def test_entry_point_plugin_is_discovered(site: Path) -> None:
    write(
        site,
        "greeter_pkg/plugin.py",
        f"""
        import {TRACE}

        def plugin_info():
            return {{"name": "greeter", "version": "0.3", "future_field": "ignored"}}

        def initialize():
            {TRACE}.events.append("initialize greeter")
        """,
    )
    write(site, "greeter_pkg/__init__.py", "")
    entry_point_plugin(site, "greeter_dist", "[kaygraph.plugins]\ngreeter = greeter_pkg.plugin\n")

    registry = PluginRegistry()

    assert registry.plugins["greeter"].version == "0.3"
    assert registry.origin("greeter") == "entry point greeter = greeter_pkg.plugin (greeter_dist 1.0)"
    registry.load("greeter")
    assert events() == ["initialize greeter"]


def test_entry_point_may_name_the_plugin_info_function(site: Path) -> None:
    write(
        site,
        "fn_pkg.py",
        f"""
        import {TRACE}

        def info():
            return {{"name": "fn", "version": "1"}}

        def initialize():
            {TRACE}.events.append("initialize fn")
        """,
    )
    entry_point_plugin(site, "fn_dist", "[kaygraph.plugins]\nfn = fn_pkg:info\n")

    registry = PluginRegistry()
    registry.load("fn")

    assert events() == ["initialize fn"]


def test_package_declared_as_entry_point_too_is_listed_once(hello: Path) -> None:
    entry_point_plugin(hello, "kaygraph_hello_dist", "[kaygraph.plugins]\nhello = kaygraph_hello\n")

    registry = PluginRegistry()

    assert list(registry.plugins) == ["hello"]


def test_package_without_plugin_info_is_not_a_plugin(site: Path) -> None:
    write(site, "kaygraph_tools/__init__.py", "X = 1\n")

    registry = PluginRegistry()

    assert registry.list_plugins() == []
    assert registry.failed == {}


def test_single_file_modules_and_stub_directories_are_not_imported(site: Path) -> None:
    write(site, "kaygraph_script.py", f"import {TRACE}\n{TRACE}.events.append('script ran')\n")
    (site / "kaygraph_stub").mkdir()  # no __init__.py
    (site / "kaygraph_x-1.0.dist-info").mkdir()

    assert PluginRegistry().list_plugins() == []
    assert "kaygraph_script" not in sys.modules
    assert events() == []


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("raise RuntimeError('boom at import')", "RuntimeError: boom at import"),
        ("def plugin_info():\n    return 42", "plugin_info() returned 42"),
        ("def plugin_info():\n    return {'name': 'x'}", "lacks 'version'"),
    ],
    ids=["import-fails", "info-not-a-dict", "info-incomplete"],
)
def test_broken_plugin_is_logged_and_skipped(
    hello: Path, source: str, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    write(hello, "kaygraph_broken/__init__.py", source + "\n")

    with caplog.at_level(logging.WARNING, logger="kaygraph.plugins"):
        registry = PluginRegistry()
        names = [info.name for info in registry.list_plugins()]

    assert names == ["hello"]  # the healthy plugin is still there
    assert error in registry.failed["kaygraph_broken"]
    assert "kaygraph_broken" in caplog.text
    with pytest.raises(PluginError, match=r"'kaygraph_broken' was found but failed to load") as caught:
        registry.load("kaygraph_broken")
    assert caught.value.plugin == "kaygraph_broken"


# -- loading -----------------------------------------------------------------------------------


def test_load_initializes_once_and_accepts_every_spelling(hello: Path) -> None:
    registry = PluginRegistry()

    module = registry.load("kaygraph_hello")
    assert registry.load("hello") is module  # without the prefix, or by plugin_info's name
    assert registry.is_loaded("hello")

    assert events() == ["import kaygraph_hello", "initialize kaygraph_hello"]
    assert registry.loaded == {"kaygraph_hello": module}


def test_unknown_plugin_names_it_and_suggests(hello: Path) -> None:
    expected = r"No KayGraph plugin named 'kaygraph_helo'\. Did you mean 'kaygraph_hello'"
    with pytest.raises(PluginError, match=expected):
        PluginRegistry().load("kaygraph_helo")


def test_failing_initialize_is_a_plugin_error_and_is_retried(site: Path) -> None:
    package_plugin(
        site,
        "kaygraph_flaky",
        '{"name": "flaky", "version": "1"}',
        extra="""
        def initialize():
            kg_plugin_trace.events.append("try")
            if kg_plugin_trace.events.count("try") == 1:
                raise ValueError("no API key")
        """,
    )
    registry = PluginRegistry()

    expected = r"'kaygraph_flaky' .* failed to initialize: ValueError: no API key"
    with pytest.raises(PluginError, match=expected):
        registry.load("flaky")
    assert not registry.is_loaded("flaky")

    registry.load("flaky")
    assert registry.is_loaded("flaky")


def test_required_plugins_load_first(site: Path) -> None:
    package_plugin(site, "kaygraph_base", '{"name": "base", "version": "1"}')
    package_plugin(site, "kaygraph_top", '{"name": "top", "version": "1", "requires": ["kaygraph", "base"]}')

    PluginRegistry().load("top")

    initialized = [event for event in events() if event.startswith("initialize")]
    assert initialized == ["initialize kaygraph_base", "initialize kaygraph_top"]


def test_missing_required_plugin_is_named(site: Path) -> None:
    package_plugin(site, "kaygraph_top", '{"name": "top", "version": "1", "requires": ["absent"]}')

    with pytest.raises(PluginError, match=r"'kaygraph_top' requires plugin 'absent'"):
        PluginRegistry().load("top")


# -- controlling auto-loading ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_disable_autoload_imports_nothing_but_explicit_load_works(
    hello: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD", value)
    registry = PluginRegistry()

    assert registry.list_plugins() == []
    assert not registry.autoload
    assert "kaygraph_hello" not in sys.modules

    registry.load("hello")  # a deliberate load is the caller's choice, as with `pytest -p`
    assert "initialize kaygraph_hello" in events()


def test_disable_autoload_zero_keeps_discovery_on(hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD", "0")
    assert [info.name for info in PluginRegistry().list_plugins()] == ["hello"]


def test_allow_list_limits_discovery_and_imports(hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package_plugin(hello, "kaygraph_other", '{"name": "other", "version": "1"}')
    write(hello, "ep_pkg.py", "def plugin_info():\n    return {'name': 'ep', 'version': '1'}\n")
    entry_point_plugin(hello, "ep_dist", "[kaygraph.plugins]\nep = ep_pkg\n")
    monkeypatch.setenv("KAYGRAPH_PLUGINS", " hello , ep ")

    registry = PluginRegistry()

    assert sorted(registry.plugins) == ["ep", "kaygraph_hello"]
    assert "kaygraph_other" not in sys.modules  # never imported, not just hidden
    assert registry.allow_list == frozenset({"hello", "ep"})
    with pytest.raises(PluginError, match="KAYGRAPH_PLUGINS limits discovery to ep, hello"):
        registry.load("missing")


def test_refresh_finds_plugins_installed_later(site: Path) -> None:
    registry = PluginRegistry()
    assert registry.list_plugins() == []

    package_plugin(site, "kaygraph_late", '{"name": "late", "version": "1"}')
    import importlib

    importlib.invalidate_caches()

    assert registry.list_plugins() == []  # discovery ran once
    assert [info.name for info in registry.discover(refresh=True)] == ["late"]


def test_global_helpers_use_the_global_registry(hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kaygraph.plugins as plugins

    fresh = PluginRegistry()
    monkeypatch.setattr(sys.modules["kaygraph.plugins.registry"], "registry", fresh)

    found: Callable[[], list[PluginInfo]] = plugins.discover_plugins
    assert [info.name for info in found()] == ["hello"]
    assert plugins.load_plugin("hello") is sys.modules["kaygraph_hello"]
    assert fresh.is_loaded("hello")


# -- regressions -------------------------------------------------------------------------------


@pytest.mark.parametrize("exit_code", ["0", "'bye'"])
def test_plugin_calling_sys_exit_at_import_is_a_broken_plugin(hello: Path, exit_code: str) -> None:
    write(hello, "kaygraph_quits/__init__.py", f"import sys\nsys.exit({exit_code})\n")

    registry = PluginRegistry()
    assert [info.name for info in registry.list_plugins()] == ["hello"]
    assert "SystemExit" in registry.failed["kaygraph_quits"]
    assert "sys.exit(" in registry.failed["kaygraph_quits"]
    with pytest.raises(PluginError, match="'kaygraph_quits' was found but failed to load"):
        registry.load("quits")


def test_initialize_calling_sys_exit_is_a_plugin_error(site: Path) -> None:
    package_plugin(
        site,
        "kaygraph_exits",
        '{"name": "exits", "version": "1"}',
        extra="""
        def initialize():
            raise SystemExit(3)
        """,
    )
    with pytest.raises(PluginError, match=r"'kaygraph_exits' .* failed to initialize: SystemExit: 3"):
        PluginRegistry().load("exits")


@pytest.mark.parametrize("autoload", [True, False])
def test_loading_a_broken_plugin_by_its_short_name_reports_it_without_reimporting(
    site: Path, monkeypatch: pytest.MonkeyPatch, autoload: bool
) -> None:
    source = f"import {TRACE}\n{TRACE}.events.append('import')\nraise RuntimeError('boom')\n"
    write(site, "kaygraph_bad/__init__.py", source)
    if not autoload:
        monkeypatch.setenv("KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = PluginRegistry()

    for name in ("bad", "kaygraph_bad", "bad"):
        expected = r"'kaygraph_bad' was found but failed to load \(RuntimeError: boom\)"
        with pytest.raises(PluginError, match=expected):
            registry.load(name)
    assert events() == ["import"]  # its code ran once


@pytest.mark.parametrize("value", [",", "", " , "])
def test_allow_list_set_but_empty_allows_nothing_and_warns(hello: Path, value: str) -> None:
    registry = PluginRegistry(env={"KAYGRAPH_PLUGINS": value})

    with pytest.warns(UserWarning, match="KAYGRAPH_PLUGINS is set to .* which names no plugin"):
        assert registry.list_plugins() == []
    assert registry.allow_list == frozenset()
    assert "kaygraph_hello" not in sys.modules
    with pytest.raises(PluginError, match="limits discovery to nothing"):
        registry.load("missing")
    registry.load("hello")  # a deliberate load still works


# -- the allow-list applies to both kinds of plugin (a security promise: nothing else is imported) --


def traced_entry_point(site: Path, name: str) -> None:
    """An entry-point plugin ``name`` (distribution ``<name>_dist``) whose import is traced."""
    write(
        site,
        f"{name}_ep.py",
        f"""
        import {TRACE}
        {TRACE}.events.append("import {name}_ep")

        def plugin_info():
            return {{"name": "{name}", "version": "1"}}
        """,
    )
    entry_point_plugin(site, f"{name}_dist", f"[kaygraph.plugins]\n{name} = {name}_ep\n")


def test_an_entry_point_outside_the_allow_list_is_never_imported(site: Path) -> None:
    traced_entry_point(site, "allowed")
    traced_entry_point(site, "forbidden")

    registry = PluginRegistry(env={"KAYGRAPH_PLUGINS": "allowed"})

    assert sorted(registry.plugins) == ["allowed"]
    assert events() == ["import allowed_ep"]
    assert "forbidden_ep" not in sys.modules
    registry.load("forbidden")  # documented: a load by name is the caller's deliberate choice
    assert events() == ["import allowed_ep", "import forbidden_ep"]


def test_a_package_outside_the_allow_list_is_never_imported(site: Path) -> None:
    package_plugin(site, "kaygraph_allowed", '{"name": "allowed", "version": "1"}')
    package_plugin(site, "kaygraph_forbidden", '{"name": "forbidden", "version": "1"}')

    registry = PluginRegistry(env={"KAYGRAPH_PLUGINS": "kaygraph_allowed"})

    assert sorted(registry.plugins) == ["kaygraph_allowed"]
    assert events() == ["import kaygraph_allowed"]
    assert "kaygraph_forbidden" not in sys.modules


@pytest.mark.parametrize("allow", ["hello", "kaygraph_hello", " hello ", "other,hello", "hello,"])
def test_a_package_is_allowed_by_its_short_or_full_name(hello: Path, allow: str) -> None:
    assert list(PluginRegistry(env={"KAYGRAPH_PLUGINS": allow}).plugins) == ["kaygraph_hello"]


@pytest.mark.parametrize("allow", ["hell", "kaygraph_hell", "hello2", "kaygraph", "HELLO"])
def test_a_near_miss_in_the_allow_list_allows_nothing(hello: Path, allow: str) -> None:
    assert PluginRegistry(env={"KAYGRAPH_PLUGINS": allow}).list_plugins() == []
    assert "kaygraph_hello" not in sys.modules


def test_unset_allow_list_allows_every_plugin_of_both_kinds(hello: Path) -> None:
    traced_entry_point(hello, "ep")
    registry = PluginRegistry(env={})
    assert registry.allow_list is None
    assert sorted(registry.plugins) == ["ep", "kaygraph_hello"]


@pytest.mark.parametrize("value", ["TRUE", "True", " yes ", "On", "1\r\n"])
def test_disable_autoload_in_any_case_and_whitespace(hello: Path, value: str) -> None:
    traced_entry_point(hello, "ep")
    registry = PluginRegistry(env={"KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD": value})
    assert registry.list_plugins() == [] and not registry.autoload
    assert events() == []  # neither kind was imported


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off", "", "disabled"])
def test_other_values_keep_autoload_on(hello: Path, value: str) -> None:
    registry = PluginRegistry(env={"KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD": value})
    assert [info.name for info in registry.list_plugins()] == ["hello"] and registry.autoload


# -- what an entry point may name, and what the registry says about it ------------------------------


def test_an_entry_point_naming_a_function_re_exported_by_a_package_initializes_its_own_module(
    site: Path,
) -> None:
    write(
        site,
        "reexport_pkg/impl.py",
        f"""
        import {TRACE}

        def info():
            return {{"name": "reexport", "version": "1"}}

        def initialize():
            {TRACE}.events.append("initialize impl")
        """,
    )
    write(site, "reexport_pkg/__init__.py", "from .impl import info\n")  # no initialize() here
    entry_point_plugin(site, "reexport_dist", "[kaygraph.plugins]\nreexport = reexport_pkg:info\n")

    PluginRegistry(env={}).load("reexport")

    assert events() == ["initialize impl"]


def test_an_entry_point_naming_a_plugin_info_value_uses_its_module(site: Path) -> None:
    write(
        site,
        "value_pkg.py",
        f"""
        import {TRACE}
        from kaygraph.plugins import PluginInfo

        INFO = PluginInfo("valued", "3.1")

        def initialize():
            {TRACE}.events.append("initialize valued")
        """,
    )
    entry_point_plugin(site, "value_dist", "[kaygraph.plugins]\nvalued = value_pkg:INFO\n")

    registry = PluginRegistry(env={})

    assert registry.plugins["valued"] == PluginInfo("valued", "3.1")
    registry.load("valued")
    assert events() == ["initialize valued"]


def test_an_entry_point_naming_something_else_is_skipped_with_the_reason(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(site, "odd_pkg.py", "NUMBER = 42\n")
    entry_point_plugin(site, "odd_dist", "[kaygraph.plugins]\nodd = odd_pkg:NUMBER\n")

    with caplog.at_level(logging.WARNING, logger="kaygraph.plugins"):
        registry = PluginRegistry(env={})
        assert registry.list_plugins() == []

    reason = (
        "Entry point 'odd' names 42; it must name a module with plugin_info(), a plugin_info function "
        "or a PluginInfo"
    )
    assert reason in registry.failed["odd"]
    (record,) = [record for record in caplog.records if "Skipping KayGraph plugin" in record.getMessage()]
    assert record.getMessage() == (
        "Skipping KayGraph plugin 'odd' (entry point odd = odd_pkg:NUMBER (odd_dist 1.0)): it failed to load"
    )
    assert record.exc_info is not None and reason in str(record.exc_info[1])
    with pytest.raises(PluginError, match="odd") as caught:
        registry.load("odd")
    assert caught.value.plugin == "odd"


def test_membership_is_by_any_spelling_of_a_known_plugin_name(hello: Path) -> None:
    registry = PluginRegistry(env={})
    assert "hello" in registry and "kaygraph_hello" in registry
    assert "missing" not in registry
    assert 5 not in registry


def test_an_unknown_plugin_lists_what_was_found_or_says_none_is_installed(site: Path) -> None:
    empty = PluginRegistry(env={})
    with pytest.raises(PluginError) as caught:
        empty.load("anything")
    assert str(caught.value) == (
        "No KayGraph plugin named 'anything'. No plugins are installed. A plugin is a 'kaygraph_<name>' "
        "package with plugin_info() or an entry point in the group 'kaygraph.plugins'."
    )
    package_plugin(site, "kaygraph_hello", '{"name": "hello", "version": "1.0"}')
    found = PluginRegistry(env={})
    with pytest.raises(PluginError) as caught:
        found.load("kaygraph_helo")
    assert str(caught.value).startswith(
        "No KayGraph plugin named 'kaygraph_helo'. Did you mean 'kaygraph_hello'? Found: kaygraph_hello."
    )


def test_plugin_info_as_a_dict_has_every_field(hello: Path) -> None:
    info = PluginRegistry(env={}).get_plugin_info("hello")
    assert info is not None
    assert info.to_dict() == {**info.__dict__}
    assert info.to_dict()["name"] == "hello" and info.to_dict()["description"] == "greets"


def test_the_global_discover_looks_once_until_asked_to_refresh(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    registry_module = importlib.import_module("kaygraph.plugins.registry")  # the module, not the object
    monkeypatch.setattr(registry_module, "registry", PluginRegistry(env={}))
    assert registry_module.discover_plugins() == []
    package_plugin(site, "kaygraph_late", '{"name": "late", "version": "1"}')
    assert registry_module.discover_plugins() == []  # cached
    assert [info.name for info in registry_module.discover_plugins(refresh=True)] == ["late"]


# -- every plugin error in full: the message and the plugin it names ---------------------------

SHAPE = "it must return a PluginInfo or a dict with at least 'name' and 'version'"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"name": "p"}, f"Plugin 'p': plugin_info() lacks 'version'; {SHAPE}"),
        ({}, f"Plugin 'p': plugin_info() lacks 'name', 'version'; {SHAPE}"),
        (42, f"Plugin 'p': plugin_info() returned 42 (int); {SHAPE}"),
        ({"name": "p", "version": 1}, "Plugin 'p': 'name' and 'version' must be strings"),
        ({"name": 1, "version": "1"}, "Plugin 'p': 'name' and 'version' must be strings"),
        (
            {"name": "p", "version": "1", "requires": "base"},
            "Plugin 'p': 'requires' must be a list of plugin names",
        ),
        (
            {"name": "p", "version": "1", "requires": 5},
            "Plugin 'p': 'requires' must be a list of plugin names",
        ),
    ],
    ids=[
        "no-version",
        "nothing",
        "not-a-dict",
        "version-not-str",
        "name-not-str",
        "requires-str",
        "requires-int",
    ],
)
def test_a_plugin_info_of_the_wrong_shape_is_an_error_naming_the_plugin(value: object, message: str) -> None:
    with pytest.raises(PluginError) as caught:
        PluginInfo.from_value(value, plugin="p")
    assert str(caught.value) == message
    assert caught.value.plugin == "p"


def test_a_broken_plugin_of_either_kind_is_recorded_under_its_name_with_the_full_reason(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    package_plugin(site, "kaygraph_half", '{"name": "half"}')
    write(site, "half_ep.py", "def plugin_info():\n    return {'version': '1'}\n")
    entry_point_plugin(site, "half_dist", "[kaygraph.plugins]\nhalf_entry = half_ep\n")

    with caplog.at_level(logging.WARNING, logger="kaygraph.plugins"):
        registry = PluginRegistry(env={})
        assert registry.list_plugins() == []

    assert registry.failed == {
        "half_entry": f"PluginError: Plugin 'half_entry': plugin_info() lacks 'name'; {SHAPE}",
        "kaygraph_half": f"PluginError: Plugin 'kaygraph_half': plugin_info() lacks 'version'; {SHAPE}",
    }
    skipped = sorted(record.getMessage() for record in caplog.records if record.name == "kaygraph.plugins")
    assert skipped == [
        "Skipping KayGraph plugin 'half_entry' (entry point half_entry = half_ep (half_dist 1.0)): "
        "it failed to load",
        f"Skipping KayGraph plugin 'kaygraph_half' (package {site / 'kaygraph_half'}): it failed to load",
    ]


def test_a_failure_recorded_under_the_short_name_is_reported_for_the_prefixed_name_too(site: Path) -> None:
    write(site, "brk_ep.py", "raise RuntimeError('broken at import')\n")
    entry_point_plugin(site, "brk_dist", "[kaygraph.plugins]\nbrk = brk_ep\n")
    registry = PluginRegistry(env={})

    with pytest.raises(PluginError) as caught:
        registry.load("kaygraph_brk")

    assert str(caught.value) == (
        "Plugin 'brk' was found but failed to load (RuntimeError: broken at import); fix or uninstall it"
    )
    assert caught.value.plugin == "brk"


def test_plugins_requiring_each_other_are_a_cycle_error_naming_the_chain(site: Path) -> None:
    package_plugin(site, "kaygraph_aa", '{"name": "aa", "version": "1", "requires": ["bb"]}')
    package_plugin(site, "kaygraph_bb", '{"name": "bb", "version": "1", "requires": ["aa"]}')

    with pytest.raises(PluginError) as caught:
        PluginRegistry(env={}).load("aa")

    assert str(caught.value) == (
        "Plugins require each other in a cycle: kaygraph_aa -> kaygraph_bb -> kaygraph_aa"
    )
    assert caught.value.plugin == "kaygraph_aa"
    assert not [event for event in events() if event.startswith("initialize")]


def test_a_missing_required_plugin_and_a_failing_initialize_name_the_plugin(site: Path) -> None:
    package_plugin(site, "kaygraph_top", '{"name": "top", "version": "1", "requires": ["absent"]}')
    package_plugin(
        site,
        "kaygraph_bad",
        '{"name": "bad", "version": "1"}',
        extra="""
        def initialize():
            raise KeyError("token")
        """,
    )
    registry = PluginRegistry(env={})

    with pytest.raises(PluginError) as missing:
        registry.load("top")
    assert str(missing.value) == (
        "Plugin 'kaygraph_top' requires plugin 'absent', which is not installed; install it or remove "
        "it from kaygraph_top's requires"
    )
    assert missing.value.plugin == "kaygraph_top"

    with pytest.raises(PluginError) as failing:
        registry.load("bad")
    assert str(failing.value) == (
        f"Plugin 'kaygraph_bad' (package {site / 'kaygraph_bad'}) failed to initialize: KeyError: 'token'"
    )
    assert failing.value.plugin == "kaygraph_bad"

    with pytest.raises(PluginError) as unknown:
        registry.load("nowhere")
    assert unknown.value.plugin == "nowhere"


def test_an_unknown_plugin_lists_every_plugin_found_and_the_allow_list(site: Path) -> None:
    package_plugin(site, "kaygraph_one", '{"name": "one", "version": "1"}')
    package_plugin(site, "kaygraph_two", '{"name": "two", "version": "1"}')
    registry = PluginRegistry(env={"KAYGRAPH_PLUGINS": "two, one"})

    with pytest.raises(PluginError) as caught:
        registry.load("three")

    assert str(caught.value) == (
        "No KayGraph plugin named 'three'. Found: kaygraph_one, kaygraph_two. KAYGRAPH_PLUGINS limits "
        "discovery to one, two. A plugin is a 'kaygraph_<name>' package with plugin_info() or an entry "
        "point in the group 'kaygraph.plugins'."
    )


def test_an_entry_point_naming_something_else_keeps_the_plugin_on_the_logged_error(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(site, "odd_pkg.py", "NUMBER = 42\n")
    entry_point_plugin(site, "odd_dist", "[kaygraph.plugins]\nodd = odd_pkg:NUMBER\n")

    with caplog.at_level(logging.WARNING, logger="kaygraph.plugins"):
        PluginRegistry(env={}).list_plugins()

    (record,) = [record for record in caplog.records if record.exc_info]
    assert isinstance(record.exc_info[1], PluginError) and record.exc_info[1].plugin == "odd"


# -- what discovery and loading log, on the kaygraph.plugins logger -----------------------------


def test_discovery_and_loading_are_logged_on_the_plugins_logger(
    hello: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (hello / "kaygraph_plain").mkdir()
    (hello / "kaygraph_plain" / "__init__.py").write_text("VALUE = 1\n")

    with caplog.at_level(logging.DEBUG, logger="kaygraph.plugins"):
        registry = PluginRegistry(env={})
        registry.load("hello")

    logged = sorted(
        (record.levelname, record.getMessage())
        for record in caplog.records
        if record.name == "kaygraph.plugins"
    )
    assert logged == [
        ("DEBUG", f"Found KayGraph plugin 'kaygraph_hello' (package {hello / 'kaygraph_hello'})"),
        ("DEBUG", "kaygraph_plain has no plugin_info(); not a KayGraph plugin"),
        ("INFO", "Loaded KayGraph plugin 'kaygraph_hello' 1.0"),
    ]


def test_an_entry_point_declared_by_two_distributions_is_taken_once_with_a_warning(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for dist in ("first_dist", "second_dist"):
        write(
            site, f"{dist}_mod.py", f"def plugin_info():\n    return {{'name': '{dist}', 'version': '1'}}\n"
        )
        entry_point_plugin(site, dist, f"[kaygraph.plugins]\ndup = {dist}_mod\nonly_{dist} = {dist}_mod\n")

    with caplog.at_level(logging.WARNING, logger="kaygraph.plugins"):
        registry = PluginRegistry(env={})
        keys = sorted(registry.plugins)

    assert keys == ["dup", "only_first_dist", "only_second_dist"]  # a duplicate ends nothing
    warned = [record.getMessage() for record in caplog.records if record.name == "kaygraph.plugins"]
    assert warned == ["Two installed distributions declare the KayGraph plugin 'dup'; using the first"]


# -- where discovery looks ----------------------------------------------------------------------


def test_a_registry_scans_only_the_path_it_is_given(hello: Path, tmp_path: Path) -> None:
    assert PluginRegistry(env={}, path=[]).list_plugins() == []  # hello is on sys.path, not on []
    missing = str(tmp_path / "missing")
    assert [info.name for info in PluginRegistry(env={}, path=[missing, str(hello)]).list_plugins()] == [
        "hello"
    ]


def test_the_first_package_on_the_path_wins_and_plain_files_are_not_candidates(
    hello: Path, tmp_path: Path
) -> None:
    later = tmp_path / "later"
    package_plugin(later, "kaygraph_hello", '{"name": "shadowed", "version": "9"}')
    (hello / "kaygraph_notes").write_text("not a module\n")  # an identifier, but a plain file
    (hello / "kaygraph_stub").mkdir()  # a directory without __init__.py

    registry = PluginRegistry(env={}, path=[str(hello), str(later)])

    assert registry.origin("hello") == f"package {hello / 'kaygraph_hello'}"
    assert registry.failed == {}
    assert "kaygraph_stub" not in sys.modules and "kaygraph_notes" not in sys.modules


def test_an_explicit_load_by_the_full_package_name_finds_it_with_autoload_off(hello: Path) -> None:
    registry = PluginRegistry(env={"KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1"})

    registry.load("kaygraph_hello")

    assert registry.origin("kaygraph_hello") == f"package {hello / 'kaygraph_hello'}"


def test_a_plugin_is_found_by_its_own_name_when_that_is_unambiguous(site: Path) -> None:
    package_plugin(site, "kaygraph_greet", '{"name": "greeter-plugin", "version": "1"}')
    package_plugin(site, "kaygraph_twin_a", '{"name": "twin", "version": "1"}')
    package_plugin(site, "kaygraph_twin_b", '{"name": "twin", "version": "2"}')
    registry = PluginRegistry(env={})

    info = registry.get_plugin_info("greeter-plugin")
    assert info is not None and info.version == "1"
    assert registry.get_plugin_info("twin") is None  # two plugins call themselves twin


def test_discover_without_refresh_returns_what_it_found_first(site: Path) -> None:
    registry = PluginRegistry(env={})
    assert registry.discover() == []
    package_plugin(site, "kaygraph_late", '{"name": "late", "version": "1"}')
    assert registry.discover() == []
    assert [info.name for info in registry.discover(refresh=True)] == ["late"]


def test_an_allow_list_naming_nothing_says_so_in_full(hello: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        PluginRegistry(env={"KAYGRAPH_PLUGINS": " , "}).list_plugins()
    assert [str(warning.message) for warning in caught] == [
        "KAYGRAPH_PLUGINS is set to ' , ', which names no plugin, so no plugin is discovered. List the "
        "plugins to allow (KAYGRAPH_PLUGINS=a,b), or unset it to allow all."
    ]


def test_an_entry_point_is_found_by_its_name_with_the_prefix_too(site: Path) -> None:
    write(site, "short_ep.py", "def plugin_info():\n    return {'name': 'a-longer-name', 'version': '1'}\n")
    entry_point_plugin(site, "short_dist", "[kaygraph.plugins]\nep = short_ep\n")
    registry = PluginRegistry(env={})

    assert registry.load("kaygraph_ep") is sys.modules["short_ep"]
    assert registry.is_loaded("ep")


def test_only_the_kaygraph_prefix_is_stripped_from_a_name(site: Path) -> None:
    """``notaplug_`` is as long as ``kaygraph_``: a name that merely has nine characters before
    ``ep`` is not plugin ``ep`` (not for the allow-list, nor look-ups, nor recorded failures)."""
    for name in ("ep", "notaplug_ep"):
        write(
            site, f"{name}_mod.py", f"def plugin_info():\n    return {{'name': 'n{name}', 'version': '1'}}\n"
        )
    write(site, "broken_mod.py", "raise RuntimeError('broken')\n")
    entry_point_plugin(
        site,
        "tail_dist",
        "[kaygraph.plugins]\nep = ep_mod\nnotaplug_ep = notaplug_ep_mod\nbad = broken_mod\n",
    )

    allowed = PluginRegistry(env={"KAYGRAPH_PLUGINS": "ep,bad"})
    assert sorted(allowed.plugins) == ["ep"]
    assert "notaplug_ep" not in allowed  # not discovered, and not mistaken for "ep"
    assert "notaplug_ep" in PluginRegistry(env={})
    with pytest.raises(UnknownPluginError):
        allowed.load("notaplug_bad")  # "bad" failed; "notaplug_bad" is another (unknown) name
