"""Without the extra's packages, importing the package still works and each feature fails with the
install hint; checked in a fresh interpreter with the drivers hidden from the import system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HINT = "pip install 'kaygraph[observability]'"


def run_without(hidden: list[str], code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("hidden", "touch", "package"),
    [
        (["opentelemetry", "opentelemetry.trace"], "TracingListener", "opentelemetry-api"),
        (["prometheus_client"], "MetricsListener", "prometheus-client"),
    ],
    ids=["opentelemetry", "prometheus_client"],
)
def test_a_missing_driver_fails_with_the_install_hint(hidden: list[str], touch: str, package: str) -> None:
    result = run_without(
        hidden,
        f"""
        import kaygraph.ext.observability as observability  # importing needs no driver
        print(observability.describe())
        from kaygraph.core.exceptions import MissingExtraError
        try:
            getattr(observability, {touch!r})
        except MissingExtraError as exc:
            print("MESSAGE:", exc)
            print("EXTRA:", exc.extra)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert "'tracing': 'off'" in result.stdout
    assert f"needs the '{package}' package" in result.stdout
    assert HINT in result.stdout
    assert "EXTRA: observability" in result.stdout


def test_instrument_names_the_missing_package() -> None:
    result = run_without(
        ["opentelemetry", "opentelemetry.trace"],
        """
        from kaygraph.ext.observability import instrument
        instrument(tracing=True)
        """,
    )
    assert result.returncode == 1
    assert "MissingExtraError" in result.stderr
    assert "KayGraph tracing needs the 'opentelemetry-api' package" in result.stderr
    assert HINT in result.stderr


def test_importing_the_package_loads_no_driver() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, kaygraph.ext.observability\n"
            "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'prometheus_client'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
