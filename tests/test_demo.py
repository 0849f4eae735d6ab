"""The README's demo keeps working: it runs offline and prints what the graph did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def test_demo_runs_offline_and_shows_its_steps(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}

    result = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "done   decide                   action='rewrite'" in out  # the branch and the loop
    assert "retry  answer                   attempt 1 failed" in out  # the retrying node
    assert "item   embed_docs[4]" in out  # the batch node
    assert re.search(r"subgraph n\d+ \[\"retrieve \(Graph\)\"\]", out)  # the nested graph, in Mermaid
    assert "Answer: Based on the docs: The persistence extension checkpoints" in out
    assert "Durable run" in out  # ran durably, or said why it was skipped
