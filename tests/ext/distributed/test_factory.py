"""Choosing an executor by URL or configuration, and what ``kaygraph info`` shows about it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from kaygraph.config import configure
from kaygraph.ext.distributed import (
    DaskExecutor,
    DistributedError,
    ProcessExecutor,
    RayExecutor,
    open_executor,
)


@pytest.mark.parametrize(
    ("url", "kind", "address"),
    [
        ("process://3", ProcessExecutor, None),
        ("dask", DaskExecutor, None),
        ("tcp://10.1.2.3:8786", DaskExecutor, "tcp://10.1.2.3:8786"),
        ("dask://sched:8786", DaskExecutor, "tcp://sched:8786"),
        ("ray", RayExecutor, None),
        ("ray://head:10001", RayExecutor, "ray://head:10001"),
        ("ray+gcs://head:6379", RayExecutor, "head:6379"),
    ],
)
def test_urls_pick_the_engine_without_connecting(url: str, kind: type, address: str | None) -> None:
    executor = open_executor(url)

    assert isinstance(executor, kind)
    assert getattr(executor, "address", None) == address
    assert repr(executor).endswith("not started>")  # nothing connects before first use


def test_local_means_no_executor() -> None:
    assert open_executor("local") is None


def test_an_unknown_url_suggests_the_right_one() -> None:
    wanted = re.escape("unknown executor 'dusk://h:1'. Did you mean 'dask'?")
    with pytest.raises(DistributedError, match=wanted):
        open_executor("dusk://h:1")


def test_the_configuration_chooses_the_executor_and_its_options() -> None:
    configure(distributed={"executor": "process", "workers": 3, "chunk_size": 7, "max_in_flight": 5})

    executor = open_executor()

    assert isinstance(executor, ProcessExecutor)
    assert executor.describe() == {
        "executor": "process",
        "address": f"local processes ({executor._method})",
        "workers": "3",
        "chunk_size": "7",
        "max_in_flight": "5",
    }
    assert executor.chunk_size(1000) == 7


def test_a_bad_executor_setting_names_the_key_and_the_choices() -> None:
    from kaygraph.core.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match=r"distributed\.executor.*'local', 'process', 'dask', 'ray'"):
        configure(distributed={"executor": "spark"})


def test_kaygraph_info_shows_the_executor_settings() -> None:
    env = {"KAYGRAPH_DISTRIBUTED_EXECUTOR": "dask", "KAYGRAPH_DISTRIBUTED_ADDRESS": "tcp://sched:8786"}
    result = subprocess.run(
        [sys.executable, "-m", "kaygraph", "info"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )

    assert result.returncode == 0, result.stderr
    section = result.stdout.split("  distributed", 1)[1].split("\n\n", 1)[0]
    assert "installed" in section.splitlines()[0]
    assert "executor: dask" in section
    assert "address: tcp://sched:8786" in section
    assert "chunk_size: auto" in section and "max_in_flight: 2 per worker slot" in section


def test_the_check_command_runs_a_task_or_names_the_unreachable_address() -> None:
    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kaygraph", "distributed", "check", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    good = check("process://2")
    bad = check("tcp://127.0.0.1:1", "--timeout", "1")

    assert good.returncode == 0, good.stderr
    assert "executor: process" in good.stdout and "workers: 2" in good.stdout
    assert "ok: connected and ran a task in" in good.stdout
    assert bad.returncode == 1
    assert bad.stderr.startswith(
        "kaygraph: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 1 s"
    ), bad.stderr
    assert bad.stdout == ""
