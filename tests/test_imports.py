"""`import kaygraph` stays cheap: no extension, plugin, config or third-party module is loaded.

Each check runs in a fresh interpreter and compares against that interpreter's own modules before
the import, because ``site`` may preload different things on different machines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent(
    """
    import json, sys
    before = set(sys.modules)
    {code}
    print(json.dumps(sorted(set(sys.modules) - before)))
    """
)

LAZY_PARTS = ("kaygraph.ext", "kaygraph.plugins", "kaygraph.config", "kaygraph.info", "kaygraph.cli")
HEAVY_STDLIB = ("asyncio", "concurrent.futures", "logging", "importlib.metadata", "argparse")


def new_modules(code: str) -> set[str]:
    """Modules that running ``code`` adds to a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(result.stdout))


def third_party(modules: set[str]) -> set[str]:
    return {
        name
        for name in modules
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "kaygraph"
    }


def test_import_kaygraph_loads_only_the_core() -> None:
    loaded = new_modules("import kaygraph")

    assert "kaygraph.core" in loaded  # the probe really imported it
    assert not {name for name in loaded if name.startswith(LAZY_PARTS)}
    assert not third_party(loaded)
    assert not {name for name in loaded if name in HEAVY_STDLIB}


def test_core_imports_nothing_outside_the_standard_library() -> None:
    loaded = new_modules("import kaygraph.core")

    assert not third_party(loaded)
    assert not {name for name in loaded if name.startswith(LAZY_PARTS)}


def test_touching_ext_loads_no_extension() -> None:
    loaded = new_modules("import kaygraph; kaygraph.ext.EXTENSIONS")

    assert "kaygraph.ext" in loaded
    assert not {name for name in loaded if name.startswith("kaygraph.ext.")}
    assert not third_party(loaded)


def test_touching_one_extension_loads_that_one_only(tmp_path: Path) -> None:
    # Two stand-in extensions in an extra directory of the kaygraph.ext package path.
    # (A real package of that name, earlier on the path, is the one touched; the stand-ins cover
    # extensions that are not shipped yet.) The extension machinery (kaygraph.ext.base) may load.
    for name in ("ui", "distributed"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("LOADED = True\n")

    loaded = new_modules(f"import kaygraph; kaygraph.ext.__path__.append({str(tmp_path)!r}); kaygraph.ext.ui")

    assert "kaygraph.ext.ui" in loaded
    others = {name for name in loaded if name.startswith("kaygraph.ext.") and name != "kaygraph.ext.ui"}
    assert not others - {"kaygraph.ext.base"}
    assert not third_party(loaded)  # the dashboard's FastAPI loads with create_app, not on touch


def test_touching_plugins_discovers_nothing() -> None:
    loaded = new_modules("import kaygraph; kaygraph.plugins.registry")

    assert "kaygraph.plugins" in loaded
    # discovery needs importlib.metadata; not having it proves nothing was looked for
    assert "importlib.metadata" not in loaded
    assert not third_party(loaded)


@pytest.mark.parametrize("name", ["config", "configure", "get_config"])
def test_config_names_load_the_module_but_not_the_file(name: str) -> None:
    loaded = new_modules(f"import kaygraph; kaygraph.{name}")

    assert "kaygraph.config" in loaded
    assert not third_party(loaded)
    assert not {m for m in loaded if m.startswith(("kaygraph.ext", "kaygraph.plugins"))}


def test_lazy_names_are_listed_and_unknown_names_fail() -> None:
    import kaygraph

    assert {"ext", "plugins", "list_extensions", "show_info", "config", "configure", "get_config"} <= set(
        dir(kaygraph)
    )
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kaygraph.nope  # noqa: B018


def test_lazy_ext_is_the_real_module() -> None:
    import kaygraph

    assert kaygraph.ext is sys.modules["kaygraph.ext"]
    assert kaygraph.plugins is sys.modules["kaygraph.plugins"]
