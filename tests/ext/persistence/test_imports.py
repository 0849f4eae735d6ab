"""Importing the extension loads no database driver; a missing driver names the pip extra."""

from __future__ import annotations

import subprocess
import sys

import pytest


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_loads_no_driver() -> None:
    result = python(
        "import sys, kaygraph.ext.persistence as p; p.durable; "
        "print(sorted(m for m in ('redis', 'psycopg', 'sqlite3') if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "driver", "store"),
    [("redis", "redis", "RedisStore"), ("postgres", "psycopg", "PostgresStore")],
)
def test_missing_driver_raises_missing_extra_error(module: str, driver: str, store: str) -> None:
    result = python(
        f"import sys; sys.modules[{driver!r}] = None\n"
        "from kaygraph.core.exceptions import MissingExtraError\n"
        "try:\n"
        f"    import kaygraph.ext.persistence.{module}\n"
        "except MissingExtraError as exc:\n"
        "    print(exc.extra, '|', exc)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("persistence | ")
    assert f"{store} needs the {driver!r} package" in result.stdout
    assert "pip install 'kaygraph[persistence]'" in result.stdout
