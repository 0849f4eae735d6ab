"""``kaygraph schedules ...`` and ``kaygraph scheduler run``, and ``kaygraph info``, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kaygraph.cli import main


@pytest.fixture
def project(graphs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(graphs.directory)  # graph references resolve from the working directory
    return graphs.directory


def kaygraph(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_next_pause_resume_trigger_remove(project, graphs, capsys) -> None:
    store = f"sqlite:///{project}/s.db"
    ref = graphs.ref("counting")
    code, out, _ = kaygraph(
        capsys, "schedules", "add", "nightly", ref, "--cron", "30 1 * * *", "--timezone", "Europe/London",
        "--store", store,
    )  # fmt: skip
    assert (
        code == 0 and f"added schedule 'nightly': {ref} cron '30 1 * * *' (Europe/London), next fire" in out
    )
    code, out, _ = kaygraph(capsys, "schedules", "add", "poll", ref, "--every", "5m", "--store", store)
    assert code == 0
    code, out, _ = kaygraph(capsys, "schedules", "list", "--store", store)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TRIGGER", "GRAPH", "STATE", "NEXT", "FIRE", "LAST", "FIRE"]
    assert lines[1].startswith("nightly") and "active" in lines[1] and "cron '30 1 * * *'" in lines[1]
    assert lines[2].startswith("poll") and "every 5m" in lines[2]
    code, out, _ = kaygraph(capsys, "schedules", "next", "nightly", "-n", "150", "--store", store)
    fires = out.splitlines()[1:]
    assert len(fires) == 150 and all("01:30:00" in line or "02:00:00" in line for line in fires)
    # The spring-forward day within the next 150 days is explained.
    assert any("does not exist today; fires when the gap ends" in line for line in fires)
    assert any("UTC offset changed from +0000 (DST)" in line for line in fires)
    assert kaygraph(capsys, "schedules", "pause", "poll", "--store", store)[1] == "paused schedule 'poll'\n"
    assert "paused" in kaygraph(capsys, "schedules", "list", "--store", store)[1].splitlines()[2]
    assert kaygraph(capsys, "schedules", "resume", "poll", "--store", store)[1] == "resumed schedule 'poll'\n"
    code, out, _ = kaygraph(capsys, "schedules", "trigger", "poll", "--store", store)
    assert code == 0 and "triggered 'poll': fire poll@" in out
    code, out, _ = kaygraph(capsys, "schedules", "fires", "poll", "--store", store)
    assert "manual" in out and "pending" in out
    assert kaygraph(capsys, "schedules", "remove", "poll", "--store", store)[0] == 0
    assert "poll" not in kaygraph(capsys, "schedules", "list", "--store", store)[1]


def test_errors_are_one_line_naming_the_culprit(project, graphs, capsys) -> None:
    store = f"sqlite:///{project}/s.db"
    code, _, err = kaygraph(capsys, "schedules", "add", "x", graphs.ref("counting"), "--cron", "* 25 * * *",
                            "--store", store)  # fmt: skip
    assert code == 1 and err == (
        "kaygraph: error: cron expression '* 25 * * *': the hour field '25' is not valid (out of range); "
        "hours are 0-23\n"
    )
    code, _, err = kaygraph(capsys, "schedules", "add", "x", graphs.ref("counting"), "--cron", "* * * * *",
                            "--timezone", "America/New_Yrok", "--store", store)  # fmt: skip
    assert code == 1 and "Did you mean 'America/New_York'" in err
    code, _, err = kaygraph(
        capsys, "schedules", "add", "x", "nowhere:graph", "--every", "1m", "--store", store
    )
    assert code == 1 and "no module named 'nowhere'" in err
    code, _, err = kaygraph(capsys, "schedules", "add", "x", graphs.ref("counting"), "--every", "soon",
                            "--store", store)  # fmt: skip
    assert code == 1 and "every 30s" in err
    code, _, err = kaygraph(capsys, "schedules", "pause", "nope", "--store", store)
    assert code == 1 and "no schedule named 'nope'" in err
    code, out, err = kaygraph(capsys, "schedules", "fires", "nope", "--store", store)
    assert code == 1 and "no schedule named 'nope'" in err and "no fires" not in out
    code, _, err = kaygraph(capsys, "schedules", "list", "--store", "postgresql://kay:pw@127.0.0.1:1/db")
    assert code == 1 and "postgresql://kay:***@127.0.0.1:1/db" in err and "pw@" not in err
    assert len(err.splitlines()) == 1  # no traceback


def test_scheduler_run_for_a_duration(project, graphs, tmp_path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    env = {**os.environ, "PYTHONPATH": str(project), "KG_SCHED_COUNT_FILE": str(graphs.count_file)}
    command = [sys.executable, "-m", "kaygraph"]
    subprocess.run([*command, "schedules", "add", "beat", graphs.ref("counting"), "--every", "1s",
                    "--overlap", "allow", "--store", store], env=env, check=True, cwd=project)  # fmt: skip
    done = subprocess.run([*command, "scheduler", "run", "--store", store, "--duration", "2.5"],
                          env=env, cwd=project, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "scheduler running on sqlite:///" in done.stdout
    assert done.stdout.count("succeeded in") >= 2 and "stopped" in done.stdout
    assert "Starting execution" not in done.stdout  # the nodes' step records stay off the console
    assert len(graphs.executed()) >= 2


def test_info_shows_the_scheduler_state(project, graphs, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KAYGRAPH_SCHEDULER_URL", f"sqlite:///{tmp_path}/info.db")
    from kaygraph.ext.scheduler import Scheduler, every

    scheduler = Scheduler()
    scheduler.add("a", graphs.ref("counting"), every(minutes=5))
    scheduler.add("b", graphs.ref("counting"), every(minutes=5), paused=True)
    _, out, _ = kaygraph(capsys, "info")
    section = out[out.index("  scheduler") : out.index("  ui")]
    assert "installed" in section and f"store: sqlite:///{tmp_path}/info.db" in section
    assert "schedules: 2 (1 paused), 0 fire(s) running" in section
    assert "next due:" in section
