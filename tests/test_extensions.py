"""Extensions: lazy access, install hints, what counts as installed, and the extension lifecycle."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kaygraph
from kaygraph import ext
from kaygraph.core.exceptions import ExtensionError, MissingExtraError
from kaygraph.ext.base import Extension, ExtensionRegistry
from kaygraph.info import list_extensions
from kaygraph.utils.imports import (
    LazyLoader,
    optional_import,
    require_extension,
    require_package,
)

#: Extensions this checkout does not ship yet (found, so the tests stay true as they land).
PLANNED = tuple(name for name in ext.EXTENSIONS if ext.package_directory(name) is None)
FAKE_PLANNED = "teleport"
STAND_IN = "hologram"


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> str:
    """A known extension name with no package here: what a planned extension looks like."""
    monkeypatch.setitem(ext.EXTENSIONS, FAKE_PLANNED, "beam graphs between galaxies")
    ext._statuses.pop(FAKE_PLANNED, None)
    yield FAKE_PLANNED  # type: ignore[misc]
    ext._statuses.pop(FAKE_PLANNED, None)


@pytest.fixture
def fake_extensions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, str | None], None]]:
    """Put stand-in extension packages on ``kaygraph.ext.__path__``; removed afterwards.

    ``make(name, source)`` creates ``<name>/__init__.py`` with ``source``, or an empty directory
    (a stub) when ``source`` is None.
    """
    monkeypatch.setattr(ext, "__path__", [*ext.__path__, str(tmp_path)])
    # Every real extension ships a package now; the stand-ins use a name KayGraph knows only here.
    monkeypatch.setitem(ext.EXTENSIONS, STAND_IN, "holographic graph projection")
    made: list[str] = []

    def make(name: str, source: str | None) -> None:
        (tmp_path / name).mkdir()
        if source is not None:
            (tmp_path / name / "__init__.py").write_text(source)
        made.append(name)
        importlib.invalidate_caches()

    ext._statuses.clear()
    yield make
    ext._statuses.clear()
    for name in made:
        sys.modules.pop(f"kaygraph.ext.{name}", None)
        ext.__dict__.pop(name, None)


# -- lazy access and install hints -------------------------------------------------------------


PLANNED_TEXT = (
    r"The KayGraph extension 'teleport' is planned but not shipped in KayGraph 1\.0\.0: no pip "
    r"install brings it yet \(the 'kaygraph\[teleport\]' extra installs nothing\)"
)


def test_planned_extension_as_attribute_says_it_is_not_shipped(planned: str) -> None:
    with pytest.raises(ImportError, match=PLANNED_TEXT) as caught:
        getattr(kaygraph.ext, planned)
    assert isinstance(caught.value, MissingExtraError)
    assert caught.value.extra == planned
    assert "pip install kaygraph" not in str(caught.value)  # no line that installs nothing


def test_planned_extension_via_import_statement_says_it_is_not_shipped(planned: str) -> None:
    with pytest.raises(MissingExtraError, match=PLANNED_TEXT):
        importlib.import_module(f"kaygraph.ext.{planned}")


def test_extensions_not_shipped_in_this_checkout_say_so() -> None:
    # A loop, not a parametrize: once every extension ships, an empty parameter set would be a skip.
    for name in PLANNED:
        with pytest.raises(MissingExtraError, match=rf"'{name}' is planned but not shipped"):
            importlib.import_module(f"kaygraph.ext.{name}")


def test_planned_extension_via_from_import_says_it_is_not_shipped(planned: str) -> None:
    with pytest.raises(MissingExtraError, match=PLANNED_TEXT):
        from kaygraph.ext import teleport  # type: ignore[attr-defined] # noqa: F401


def test_unknown_attribute_of_ext_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="schedular"):
        kaygraph.ext.schedular  # noqa: B018


def test_extension_is_loaded_on_first_touch(
    fake_extensions: Callable[[str, str | None], None], planned: str
) -> None:
    fake_extensions(planned, "VALUE = 42\n")  # every real extension ships now: a stand-in name
    assert f"kaygraph.ext.{planned}" not in sys.modules

    assert getattr(kaygraph.ext, planned).VALUE == 42
    assert sys.modules[f"kaygraph.ext.{planned}"] is getattr(kaygraph.ext, planned)


# -- what counts as installed ------------------------------------------------------------------


def test_planned_extensions_are_not_listed(planned: str) -> None:
    names = {name for name, _ in list_extensions()}
    assert not names & {*PLANNED, planned}
    status = ext.status(planned)
    assert (status.installed, status.usable, status.state) == (False, False, "planned")
    assert status.detail == "not shipped in KayGraph 1.0.0 yet"
    assert "pip install" not in status.reason.replace("no pip install brings it", "")


def test_a_real_extension_package_is_listed(fake_extensions: Callable[[str, str | None], None]) -> None:
    fake_extensions("hologram", "")
    assert ("hologram", ext.EXTENSIONS["hologram"]) in list_extensions()


def test_an_empty_stub_directory_is_not_installed(
    fake_extensions: Callable[[str, str | None], None], planned: str
) -> None:
    fake_extensions(planned, None)  # a directory without __init__.py imports as a namespace package

    assert not ext.status(planned).installed
    assert planned not in {name for name, _ in list_extensions()}


def test_extension_whose_dependency_is_missing_is_not_installed(
    fake_extensions: Callable[[str, str | None], None], planned: str
) -> None:
    fake_extensions(
        planned,
        "from kaygraph.utils.imports import require_package\n"
        "require_package('kaygraph_no_such_driver', 'scheduler', 'Scheduling')\n",
    )

    status = ext.status(planned)
    assert not status.installed
    assert "Scheduling needs the 'kaygraph_no_such_driver' package" in status.reason
    with pytest.raises(MissingExtraError, match="kaygraph_no_such_driver"):
        ext.require(planned)


def test_extension_whose_extra_distributions_are_missing_is_not_installed(
    fake_extensions: Callable[[str, str | None], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    fake_extensions("hologram", "")
    monkeypatch.setattr(
        importlib.metadata,
        "requires",
        lambda dist: ["kaygraph-no-such-dist>=1.0; extra == 'hologram'", "redis>=5; extra == 'x'"],
    )

    status = ext.status("hologram")
    assert not status.installed
    assert status.state == "partial" and status.usable  # the package imports: the rest says so when used
    assert status.reason == (
        "The KayGraph extension 'hologram' works in part: kaygraph-no-such-dist>=1.0 not installed "
        "(the parts that need them say so when used). Install everything with: "
        "pip install 'kaygraph[hologram]'"
    )  # requirements of other extras (redis) do not count
    assert status.detail == "needs kaygraph-no-such-dist>=1.0: pip install 'kaygraph[hologram]'"
    ext.require("hologram")  # usable: no error


def test_extension_whose_extra_is_installed_but_broken_is_not_installed(
    fake_extensions: Callable[[str, str | None], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    site = tmp_path / "site"
    (site / "kg_broken_dist").mkdir(parents=True)
    (site / "kg_broken_dist" / "__init__.py").write_text("raise OSError('libfoo.so not found')\n")
    info = site / "kg_broken_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kg-broken-dist\nVersion: 1.0\n")
    (info / "RECORD").write_text("kg_broken_dist/__init__.py,,\nkg_broken_dist-1.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(site))
    fake_extensions("hologram", "")
    requirement = "kg-broken-dist>=1; extra == 'hologram'"
    monkeypatch.setattr(importlib.metadata, "requires", lambda dist: [requirement])

    status = ext.status("hologram")

    assert not status.installed
    expected = "kg-broken-dist>=1 (installed, but importing kg_broken_dist fails: libfoo.so not found)"
    assert expected in status.reason
    sys.modules.pop("kg_broken_dist", None)


def test_unknown_extension_name_suggests_the_closest() -> None:
    with pytest.raises(ExtensionError, match="Did you mean 'persistence'"):
        ext.status("persistance")


# -- import helpers ----------------------------------------------------------------------------


def test_require_package_builds_the_install_hint() -> None:
    with pytest.raises(MissingExtraError) as caught:
        require_package("kaygraph_no_such_driver", "persistence", "The Redis store")

    assert str(caught.value) == (
        "The Redis store needs the 'kaygraph_no_such_driver' package. "
        "Install it with: pip install 'kaygraph[persistence]'"
    )
    assert caught.value.extra == "persistence"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


def test_require_package_tells_a_broken_package_from_a_missing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kg_broken_driver.py").write_text("import kaygraph_inner_dependency_missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    with pytest.raises(MissingExtraError, match="installed but failed to import") as caught:
        require_package("kg_broken_driver", "persistence", "The store", package="broken-driver")
    assert "'broken-driver'" in str(caught.value)
    assert "kaygraph_inner_dependency_missing" in str(caught.value)
    with pytest.raises(ModuleNotFoundError, match="kaygraph_inner_dependency_missing"):
        optional_import("kg_broken_driver")  # broken is not absent: it propagates
    sys.modules.pop("kg_broken_driver", None)


def test_optional_import_returns_none_only_when_absent() -> None:
    assert optional_import("kaygraph_no_such_module") is None
    assert optional_import("kaygraph_no_such_module.sub") is None
    assert optional_import("json") is sys.modules["json"]


def test_lazy_loader_imports_on_first_attribute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kg_lazy_target.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    loader = LazyLoader("kg_lazy_target")
    assert "kg_lazy_target" not in sys.modules
    assert "not loaded" in repr(loader)

    assert loader.ANSWER == 42
    assert "kg_lazy_target" in sys.modules
    assert "ANSWER" in dir(loader)
    sys.modules.pop("kg_lazy_target", None)


def test_lazy_loader_with_extra_gives_the_install_hint() -> None:
    loader = LazyLoader("kaygraph_no_such_driver", extra="observability", feature="Tracing")
    with pytest.raises(MissingExtraError, match=r"Tracing needs .* pip install 'kaygraph\[observability\]'"):
        loader.anything  # noqa: B018


def test_require_extension_keeps_the_function_and_checks_at_call_time(planned: str) -> None:
    @require_extension(planned)
    def schedule_nightly(cron: str) -> str:
        """Run the graph every night."""
        return cron

    assert schedule_nightly.__name__ == "schedule_nightly"
    assert schedule_nightly.__doc__ == "Run the graph every night."
    assert str(inspect.signature(schedule_nightly)) == "(cron: 'str') -> 'str'"
    with pytest.raises(MissingExtraError, match=PLANNED_TEXT):
        schedule_nightly("0 3 * * *")


def test_require_extension_runs_the_function_when_installed(
    fake_extensions: Callable[[str, str | None], None],
) -> None:
    fake_extensions("hologram", "")

    @require_extension("hologram")
    def fan_out(n: int) -> int:
        return n * 2

    @require_extension("hologram")
    async def fan_out_async(n: int) -> int:
        return n * 3

    assert fan_out(2) == 4
    assert inspect.iscoroutinefunction(fan_out_async)
    assert asyncio.run(fan_out_async(2)) == 6


def test_require_extension_rejects_an_unknown_name_at_decoration() -> None:
    with pytest.raises(ExtensionError, match="Did you mean 'scheduler'"):
        require_extension("schedular")


# -- the extension lifecycle -------------------------------------------------------------------


class Counting(Extension):
    """A test extension with class-attribute name and version that counts its lifecycle calls."""

    name = "counting"
    version = "1.2.3"

    def __init__(self, fail_shutdown: bool = False, log: list[str] | None = None) -> None:
        super().__init__()
        self.initialized = 0
        self.shut_down = 0
        self.fail_shutdown = fail_shutdown
        self.log = log if log is not None else []

    def initialize(self) -> None:
        time.sleep(0.01)  # widen the window in which racing threads could both initialize
        self.initialized += 1
        self.log.append(f"init {self.name}")

    def shutdown(self) -> None:
        self.shut_down += 1
        self.log.append(f"shutdown {self.name}")
        if self.fail_shutdown:
            raise OSError(f"{self.name} cannot close its socket")


def named(name: str, base: type[Counting] = Counting) -> type[Counting]:
    """A Counting subclass whose name is a property, as extensions may also define it."""
    return type(name.title(), (base,), {"name": property(lambda self: name)})


def test_name_and_version_may_be_class_attributes_or_properties() -> None:
    assert Counting().name == "counting"
    assert Counting().version == "1.2.3"
    assert named("other")().name == "other"


def test_get_initializes_once_even_when_threads_race() -> None:
    registry = ExtensionRegistry()
    extension = registry.register(Counting())

    threads = [threading.Thread(target=registry.get, args=("counting",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    registry.get("counting")

    assert extension.initialized == 1
    assert extension.is_initialized


def test_failed_initialize_propagates_and_is_retried() -> None:
    class Flaky(Counting):
        attempts = 0

        def initialize(self) -> None:
            Flaky.attempts += 1
            if Flaky.attempts == 1:
                raise ConnectionError("collector down")

    registry = ExtensionRegistry()
    extension = registry.register(Flaky())
    with pytest.raises(ConnectionError, match="collector down"):
        registry.get("counting")
    assert not extension.is_initialized

    registry.get("counting")
    assert extension.is_initialized
    assert Flaky.attempts == 2


def test_shutdown_all_shuts_every_one_down_even_if_one_raises(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    registry = ExtensionRegistry()
    first = registry.register(named("first")(log=log))
    broken = registry.register(named("broken")(fail_shutdown=True, log=log))
    last = registry.register(named("last")(log=log))
    never = registry.register(named("never")(log=log))
    for name in ("first", "broken", "last"):
        registry.get(name)

    with pytest.raises(ExtensionError, match="broken") as caught:
        registry.shutdown_all()

    assert log[3:] == ["shutdown last", "shutdown broken", "shutdown first"]  # reverse of init
    assert (first.shut_down, broken.shut_down, last.shut_down, never.shut_down) == (1, 1, 1, 0)
    assert not any(extension.is_initialized for extension in (first, broken, last))
    assert isinstance(caught.value.__cause__, OSError)
    assert "broken cannot close its socket" in caplog.text

    registry.shutdown_all()  # nothing is initialized any more: nothing runs, nothing raises
    assert broken.shut_down == 1


def test_global_style_registry_shuts_down_at_exit() -> None:
    import subprocess
    import textwrap

    code = textwrap.dedent(
        """
        from kaygraph.ext.base import Extension, ExtensionRegistry

        class Server(Extension):
            name = "server"
            version = "1"
            def initialize(self):
                print("started", flush=True)
            def shutdown(self):
                print("stopped", flush=True)

        registry = ExtensionRegistry(shutdown_at_exit=True)
        registry.register(Server())
        registry.get("server")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["started", "stopped"]


def test_unknown_extension_name_names_it_with_a_suggestion() -> None:
    registry = ExtensionRegistry()
    registry.register(Counting())
    assert registry.get("countin") is None  # the spec's Optional: get() never raises for a name
    with pytest.raises(ExtensionError, match=r"'countin'.*Did you mean 'counting'"):
        registry.require("countin")


def test_get_of_a_planned_builtin_extension_says_it_is_not_shipped(planned: str) -> None:
    with pytest.raises(MissingExtraError, match=PLANNED_TEXT):
        ExtensionRegistry().get(planned)


def test_register_rejects_what_is_not_an_extension() -> None:
    with pytest.raises(ExtensionError, match="needs an Extension instance"):
        ExtensionRegistry().register(object())  # type: ignore[arg-type]


def test_replacing_an_initialized_extension_needs_replace() -> None:
    registry = ExtensionRegistry()
    old = registry.register(Counting())
    registry.get("counting")

    with pytest.raises(ExtensionError, match="replace=True"):
        registry.register(Counting())
    new = registry.register(Counting(), replace=True)

    assert old.shut_down == 1
    assert registry.peek("counting") is new


def test_describe_defaults_to_nothing_and_peek_does_not_initialize() -> None:
    registry = ExtensionRegistry()
    extension = registry.register(Counting())

    assert registry.peek("counting") is extension
    assert extension.describe() == {}
    assert not extension.is_initialized
    assert "counting" in registry
    assert "not initialized" in repr(extension)


# -- what `kaygraph info` shows ----------------------------------------------------------------

DESCRIBED = """
from kaygraph.ext.base import Extension, register_extension

class Distributed(Extension):
    name = "hologram"
    version = "0.1"
    def initialize(self):
        raise AssertionError("info must not initialize extensions")
    def describe(self):
        return {"executor": "local", "workers": "4"}

register_extension(Distributed())
"""


def test_info_shows_an_installed_extensions_status_lines(
    fake_extensions: Callable[[str, str | None], None], planned: str
) -> None:
    from kaygraph.ext.base import registry
    from kaygraph.info import info_lines

    fake_extensions("hologram", DESCRIBED)
    try:
        lines = info_lines()
        assert not registry.peek("hologram").is_initialized  # type: ignore[union-attr]
    finally:
        registry.unregister("hologram")

    start = next(i for i, line in enumerate(lines) if line.startswith("  hologram"))
    assert "installed  holographic graph projection" in lines[start]
    assert lines[start + 1].strip() == "executor: local"
    assert lines[start + 2].strip() == "workers: 4"
    planned_line = "  teleport       planned    beam graphs between galaxies: not shipped in KayGraph 1.0.0 yet"  # noqa: E501
    assert planned_line in lines
    assert not any("pip install kaygraph[teleport]" in line for line in lines)


def test_info_survives_a_broken_describe(fake_extensions: Callable[[str, str | None], None]) -> None:
    from kaygraph.ext.base import registry
    from kaygraph.info import info_lines

    fake_extensions("hologram", DESCRIBED.replace('return {"executor"', 'return 1 / 0 or {"executor"'))
    try:
        text = "\n".join(info_lines())
    finally:
        registry.unregister("hologram")

    assert "status: describe() failed: ZeroDivisionError: division by zero" in text


# -- regressions -------------------------------------------------------------------------------


def test_dir_lists_only_extensions_that_are_there_so_help_and_getmembers_work() -> None:
    import pydoc

    names = dir(ext)
    assert "persistence" in names and "observability" in names
    assert not set(PLANNED) & set(names)
    # pydoc and inspect fetch every listed name: none may raise MissingExtraError.
    members = dict(inspect.getmembers(ext))
    assert not set(PLANNED) & set(members)
    assert "KayGraph extensions" in pydoc.render_doc(ext)


def test_dir_lists_an_extension_once_its_package_appears(
    fake_extensions: Callable[[str, str | None], None], planned: str
) -> None:
    assert planned not in dir(ext)
    fake_extensions(planned, "VALUE = 1\n")
    assert planned in dir(ext)


# -- kaygraph info is honest (issue 11) ----------------------------------------------------------


def test_info_shows_a_partial_extension_with_what_it_needs(
    fake_extensions: Callable[[str, str | None], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata

    from kaygraph.info import info_lines

    fake_extensions("hologram", "")
    monkeypatch.setattr(
        importlib.metadata, "requires", lambda dist: ["kaygraph-no-such-dist>=1.0; extra == 'hologram'"]
    )

    lines = info_lines()

    start = lines.index("  hologram       partial    holographic graph projection")
    needs = "needs: kaygraph-no-such-dist>=1.0: pip install 'kaygraph[hologram]'"
    assert lines[start + 1] == " " * 19 + needs


def test_persistence_without_drivers_says_sqlite_and_memory_are_ready(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kaygraph.ext.persistence import _backends_ready

    assert _backends_ready() == "SQLite, memory, Redis and PostgreSQL ready"
    monkeypatch.setitem(sys.modules, "redis", None)  # None in sys.modules: importing it fails
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert _backends_ready() == (
        "SQLite and memory ready; Redis/PostgreSQL need redis, psycopg: pip install 'kaygraph[persistence]'"
    )
    monkeypatch.delitem(sys.modules, "redis")
    assert _backends_ready() == (
        "SQLite, memory and Redis ready; PostgreSQL needs psycopg: pip install 'kaygraph[persistence]'"
    )


def test_info_reports_a_bad_setting_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from kaygraph.info import info_lines

    monkeypatch.setenv("KAYGRAPH_PERSISTENCE_BACKEND", "bogus")

    text = "\n".join(info_lines())

    assert text.count("bogus") == 0  # the full message is the CLI's "Config: ERROR" line, once
    assert "                   config: invalid persistence.backend (see Config below)" in text
    observability = text[text.index("  observability"):text.index("  scheduler")]
    assert "persistence" not in observability and "describe() failed" not in text
