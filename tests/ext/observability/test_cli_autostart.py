"""KayGraph's long-running commands switch observability on from configuration alone (their user
has no start-up code in which to call instrument())."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kaygraph.ext.observability import uninstrument
from kaygraph.utils.observe import observe_from_config

GRAPH = '''
from kaygraph import Graph, Node


class Beat(Node):
    def post(self, shared, prep_res, exec_res):
        shared["beat"] = True


def beat():
    return Graph(start=Beat(), name="beat")
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_starts_when_observability_is_off() -> None:
    assert observe_from_config() is None


def test_the_metrics_endpoint_starts_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_ENABLED", "true")
    monkeypatch.setenv("KAYGRAPH_OBSERVABILITY_METRICS_PORT", str(port))
    try:
        line = observe_from_config()
        assert line == f"observability: metrics http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200
            assert b"kaygraph_graph_runs_total" in answer.read()
    finally:
        uninstrument()


def test_kaygraph_scheduler_run_serves_metrics_when_configured(tmp_path: Path) -> None:
    (tmp_path / "beatgraph.py").write_text(GRAPH)
    port = free_port()
    store = f"sqlite:///{tmp_path}/schedules.db"
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "KAYGRAPH_OBSERVABILITY_METRICS_ENABLED": "true",
        "KAYGRAPH_OBSERVABILITY_METRICS_PORT": str(port),
    }
    command = [sys.executable, "-m", "kaygraph"]
    add = [*command, "schedules", "add", "beat", "beatgraph:beat", "--every", "1s", "--store", store]
    subprocess.run(add, env=env, cwd=tmp_path, check=True, capture_output=True)
    process = subprocess.Popen([*command, "scheduler", "run", "--store", store, "--duration", "20"],
                               env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                    body = answer.read()
                if b'kaygraph_graph_runs_total{graph="beat"' in body:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert b'kaygraph_graph_runs_total{graph="beat"' in body
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=60)
    assert f"observability: metrics http://127.0.0.1:{port}/metrics" in output
