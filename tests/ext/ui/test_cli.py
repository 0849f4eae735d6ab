"""``kaygraph ui``: refuses unsafe binds, serves the dashboard, reports bad graph references."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

HERE = Path(__file__).parent


def kaygraph(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaygraph", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_env(), **(env or {})},
        cwd=HERE,
    )


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return env


def test_a_public_bind_without_a_token_is_refused() -> None:
    result = kaygraph("ui", "--host", "0.0.0.0", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("kaygraph: error: refusing to serve 0.0.0.0 without a token")
    assert "KAYGRAPH_UI_TOKEN" in result.stderr and "--insecure-no-auth" in result.stderr


def test_a_bad_graph_reference_names_the_module() -> None:
    result = kaygraph("ui", "--port", "0", "--graphs", "no_such_module_xyz:graph")
    assert result.returncode == 2
    assert result.stderr.startswith("kaygraph: error: graph reference 'no_such_module_xyz:graph'")
    assert "Traceback" not in result.stderr


def test_kaygraph_ui_serves_the_dashboard(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/runs.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kaygraph",
            "ui",
            "--store",
            store,
            "--port",
            "0",
            "--graphs",
            "ui_graphs:pipeline",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_env(), "KAYGRAPH_UI_TOKEN": "t" * 12},
        cwd=HERE,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("KayGraph dashboard: http://127.0.0.1:"), line + (
            process.stderr.read() if process.stderr else ""
        )
        url = line.split()[2]
        assert httpx.get(url + "healthz", timeout=10).json()["status"] == "ok"
        assert httpx.get(url + "api/graphs", timeout=10).status_code == 401  # the token from the environment
        graphs = httpx.get(
            url + "api/graphs", headers={"Authorization": "Bearer " + "t" * 12}, timeout=10
        ).json()
        assert [graph["name"] for graph in graphs["graphs"]] == ["pipeline"]
        assert graphs["graphs"][0]["ref"] == "ui_graphs:pipeline"
    finally:
        process.terminate()
        process.wait(10)
