"""Tracing with nowhere to send spans warns once instead of dropping them in silence (issue 11).

Each case runs in a fresh process: OpenTelemetry sets the global TracerProvider once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kaygraph.ext.observability.tracing import NO_PROVIDER_WARNING

PROGRAM = """\
import warnings
warnings.simplefilter("always")
from kaygraph import Graph, Node
from kaygraph.ext.observability import instrument

class Hello(Node):
    def exec(self, _):
        return "hello"

{setup}
graph = Graph(Hello(), name="hello")
graph.run({{}})
graph.run({{}})
"""


def run_program(tmp_path: Path, setup: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(PROGRAM.format(setup=textwrap.dedent(setup)))
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KAYGRAPH_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )


def test_tracing_without_a_provider_warns_once_at_the_users_run_line(tmp_path: Path) -> None:
    done = run_program(tmp_path, "instrument(tracing=True)")

    assert done.returncode == 0, done.stderr
    line = PROGRAM.format(setup="instrument(tracing=True)").splitlines().index("graph.run({})") + 1
    assert done.stderr.count("UserWarning") == 1  # two runs, one warning
    assert f"app.py:{line}: UserWarning: {NO_PROVIDER_WARNING}" in done.stderr
    assert NO_PROVIDER_WARNING.startswith(
        "KayGraph tracing is on, but no OpenTelemetry TracerProvider is configured, so every span is "
        "dropped. To see spans: instrument(tracing=True, exporter='console') prints them"
    )


@pytest.mark.parametrize(
    "setup",
    [
        'instrument(tracing=True, exporter="console")',
        # A provider set after instrument() but before the first run receives every span: no warning.
        """
        instrument(tracing=True)
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        """,
        "instrument(tracing=False, metrics=False)",
    ],
    ids=["console-exporter", "provider-set-later", "tracing-off"],
)
def test_no_warning_when_spans_have_somewhere_to_go(tmp_path: Path, setup: str) -> None:
    done = run_program(tmp_path, setup)

    assert done.returncode == 0, done.stderr
    assert "TracerProvider is configured" not in done.stderr
    if "console" in setup:
        assert done.stdout.count('"name": "run hello"') == 2  # the snippet really prints spans
