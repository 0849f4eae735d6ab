"""The README's demo keeps its promises: it runs offline, shows each step, really kills a child
process mid-run, and resumes it in a new process without rerunning the completed steps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"


def run_demo(cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    command = [sys.executable, "-W", "error", str(DEMO)]  # a warning (even ResourceWarning) fails
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no traceback, no warning, nothing from the killed child
    return result.stdout


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One demo run (in a fresh directory) that several tests read: the demo takes seconds."""
    directory = tmp_path_factory.mktemp("demo")
    return directory, run_demo(directory)


def test_demo_shows_the_graph_at_work_in_memory(first_run: tuple[Path, str]) -> None:
    _, out = first_run
    in_memory = out[: out.index("\n2. ")]

    assert "embed_docs             5 items" in in_memory  # the batch node, one line not five
    assert "decide                 'rewrite' -> rewrite" in in_memory  # the branch...
    assert "rewrite                'retry' -> retrieve" in in_memory  # ...and the loop
    assert "answer                 attempt 1 failed (fake LLM: upstream timed out), retrying" in in_memory
    assert "None" not in in_memory  # actions only where they pick an edge: no action=None noise
    assert re.search(r'subgraph n\d+ \["retrieve \(Graph\)"\]', in_memory)  # the nested graph, in Mermaid
    assert "Answer: Based on the docs: The persistence extension checkpoints" in in_memory


def test_demo_kills_a_real_child_process_and_resumes_in_a_new_one(first_run: tuple[Path, str]) -> None:
    from kaygraph.ext.persistence import get_run, steps

    tmp_path, out = first_run

    killed = re.search(r"Killed pid (\d+) with SIGKILL in the middle of 'answer' \(no finally", out)
    assert killed, out
    crashed_pid = killed.group(1)
    resume_part = out[out.index("\n3. ") :]
    resumer_pids = set(re.findall(r"\[pid (\d+)\]", resume_part))
    assert len(resumer_pids) == 1 and crashed_pid not in resumer_pids  # another process resumed
    assert str(os.getpid()) not in resumer_pids | {crashed_pid}  # and neither is this one
    resumed_steps = [line for line in resume_part.splitlines() if line.startswith("  [pid")]
    assert all(" answer " in line or "succeeded" in line for line in resumed_steps), resumed_steps
    assert "The store kept run 'demo-crash': status 'running', 10 steps checkpointed." in out
    assert (
        "Skipped, restored from the checkpoint (10 steps): embed_docs, retrieve/embed_query x2,\n"
        "    retrieve/search x2, retrieve x2, decide x2, rewrite\n"
        "  Ran (1 step): answer\n"
        "  Run 'demo-crash' succeeded, with the same answer as in memory.\n"
    ) in out

    # What the demo says is what the store holds.
    store = f"sqlite:///{tmp_path / '.kaygraph' / 'demo.db'}"
    history = steps(store, "demo-crash")
    assert [record.kind for record in history].count("resume") == 1
    assert [record.node_id for record in history if record.kind == "step"].count("embed_docs") == 1
    assert get_run(store, "demo-crash").status == "succeeded"


def test_demo_ends_with_next_steps_and_runs_again_from_a_clean_slate(first_run: tuple[Path, str]) -> None:
    tmp_path, _ = first_run
    out = run_demo(tmp_path)  # the second run replaces the first one's run in the store

    assert "Ran (1 step): answer" in out
    next_steps = out[out.index("\nNext steps:\n") :]
    assert "  kaygraph info\n" in next_steps
    assert "  kaygraph runs show demo-crash --store sqlite:///.kaygraph/demo.db\n" in next_steps
    assert "  kaygraph ui" in next_steps and "README.md" in next_steps

    # The next steps it prints work as printed.
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    for command in ("kaygraph info", "kaygraph runs show demo-crash --store sqlite:///.kaygraph/demo.db"):
        args = [sys.executable, "-m", "kaygraph", *command.split()[1:]]
        done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout and "answer" in done.stdout
