"""The core imports only the standard library and nothing from kaygraph.ext; importing it is cheap."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import kaygraph.core

CORE = Path(kaygraph.core.__file__).parent


def test_core_source_imports_only_stdlib_and_itself():
    allowed = set(sys.stdlib_module_names) | {"__future__"}
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed, f"{path.name} imports {name} (even for type checking only)"
                assert not name.startswith("kaygraph.ext"), f"{path.name} imports {name}"


def test_importing_kaygraph_loads_no_third_party_module_nor_asyncio():
    code = (
        "import sys, json; before = set(sys.modules); import kaygraph; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    stdlib = set(sys.stdlib_module_names)
    foreign = [m for m in loaded if m.split(".")[0] not in stdlib and not m.startswith("kaygraph")]
    assert foreign == []
    assert not [m for m in loaded if m.startswith(("kaygraph.ext", "kaygraph.plugins", "kaygraph.config"))]
    for heavy in ("asyncio", "concurrent.futures", "typing", "logging", "inspect"):
        assert heavy not in loaded, f"import kaygraph loads {heavy}"
