"""How long plugin discovery takes on a site-packages with ~200 installed packages.

Builds a temporary site-packages of 200 ordinary distributions (a package plus a dist-info with
METADATA, RECORD and, for half of them, console-script entry points) and 3 KayGraph plugins (two
``kaygraph_*`` packages, one entry point). Each run starts a fresh interpreter with that directory
first on ``sys.path`` and times the first ``discover_plugins()`` call, which includes importing
``importlib.metadata`` and the plugins themselves. Prints the median in milliseconds.

    .venv/bin/python bench/plugin_discovery.py [--runs 9] [--packages 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """
import sys, time
sys.path.insert(0, {site!r})
import kaygraph.plugins as plugins
start = time.perf_counter()
found = plugins.discover_plugins()
first = time.perf_counter() - start
start = time.perf_counter()
plugins.discover_plugins(refresh=True)
again = time.perf_counter() - start
assert sorted(info.name for info in found) == ["alpha", "beta", "gamma"], found
print(first * 1000, again * 1000)
"""


def build_site(root: Path, packages: int) -> Path:
    site = root / "site-packages"
    site.mkdir()
    for index in range(packages):
        name = f"pkg_{index:03d}"
        (site / name).mkdir()
        (site / name / "__init__.py").write_text("VALUE = 1\n")
        info = site / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n")
        if index % 2:
            (info / "entry_points.txt").write_text(f"[console_scripts]\n{name} = {name}:main\n")
    for plugin in ("alpha", "beta"):
        (site / f"kaygraph_{plugin}").mkdir()
        (site / f"kaygraph_{plugin}" / "__init__.py").write_text(
            f"def plugin_info():\n    return {{'name': {plugin!r}, 'version': '1.0'}}\n"
        )
    (site / "gamma_plugin.py").write_text(
        "def plugin_info():\n    return {'name': 'gamma', 'version': '1.0'}\n"
    )
    info = site / "gamma_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gamma-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[kaygraph.plugins]\ngamma = gamma_plugin\n")
    return site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--packages", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = build_site(Path(tmp), args.packages)
        firsts, agains = [], []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, "-c", PROBE.format(site=str(site))],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            firsts.append(float(out[0]))
            agains.append(float(out[1]))
    first, again = statistics.median(firsts), statistics.median(agains)
    print(
        f"plugin discovery, {args.packages} packages + 3 plugins, median of {args.runs} fresh processes:\n"
        f"  first discovery (imports importlib.metadata and the plugins): {first:.1f} ms\n"
        f"  repeated discovery (refresh=True):                            {again:.1f} ms"
    )


if __name__ == "__main__":
    main()
