"""``RayExecutor("ray://...")`` against a real Ray head with a Ray Client server (``ray_head`` in
conftest): a client process runs the conformance pipeline there with the same results as a local
run, and a client the head turns away (no token) gets a clear error, not Ray's traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import RayHead
from .test_conformance import build_pipeline, local_where

DRIVER = Path(__file__).with_name("ray_client_driver.py")


def test_a_ray_client_address_runs_batches_and_remote_nodes_like_a_local_run(ray_head: RayHead) -> None:
    result = subprocess.run(
        [sys.executable, str(DRIVER), ray_head.address],
        capture_output=True,
        text=True,
        timeout=240,
        env=ray_head.env,
    )

    assert result.returncode == 0, f"{result.stderr[-3000:]}\nhead log: {ray_head.log}"
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    for name, parallel in (("batch", False), ("parallel", True)):
        local = {"numbers": list(range(12))}
        build_pipeline(parallel).run(local)
        assert outcome[name] == local_where(local), name
    assert outcome["describe"]["address"] == ray_head.address
    assert outcome["describe"]["workers"] == "2"  # the head's CPUs, read through the client


def test_a_client_the_cluster_turns_away_is_told_about_the_token(ray_head: RayHead) -> None:
    env = {key: value for key, value in ray_head.env.items() if key != "RAY_AUTH_TOKEN"}
    env["RAY_AUTH_MODE"] = "disabled"  # a client that does not know the cluster wants a token
    # Ray Client retries three times, 5 + 10 + 15 s by default; 1 s each keeps the test short.
    env["RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S"] = env["RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S"] = "1"

    result = subprocess.run(
        [sys.executable, "-m", "kaygraph", "distributed", "check", ray_head.address],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )

    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(
        f"kaygraph: error: cannot connect to the Ray Client server at {ray_head.address} "
        "(ConnectionError: ray client connection timeout); its port answers"
    ), result.stderr
    assert "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token>" in result.stderr
    assert "RAY_AUTH_MODE is 'disabled' here" in result.stderr
    assert "Traceback" not in result.stderr
