"""The crash-and-resume example of docs/persistence.md works as printed."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = [ROOT / "docs" / "persistence.md", ROOT / "README.md"]


def crash_example(doc: Path) -> str:
    text = doc.read_text()
    marker = text.index("<!-- crash-example")
    match = re.compile(r"```python\n(.*?)```", re.DOTALL).search(text, marker)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("doc", DOCS, ids=[doc.name for doc in DOCS])
def test_crash_and_resume_example(doc: Path, tmp_path: Path, worker_env: dict[str, str]) -> None:
    (tmp_path / "pipeline.py").write_text(crash_example(doc))

    def run(*args: str, crash: bool = False) -> subprocess.CompletedProcess[str]:
        env = {**worker_env, **({"CRASH": "1"} if crash else {})}
        return subprocess.run(
            [sys.executable, "pipeline.py", *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    crashed = run(crash=True)
    assert crashed.returncode == -signal.SIGKILL
    assert crashed.stdout == "fetching the invoice\n"
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == (
        "succeeded {'invoice': 42, 'lines': ['2 x widgets', '1 x gadget'], 'summary': '2 invoice lines'}\n"
    )  # and "fetching the invoice" was not printed again: Fetch did not rerun
