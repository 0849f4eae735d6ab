"""The `kaygraph` command: `info`, `config`, and the seam through which extensions add commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaygraph import ext
from kaygraph.cli import main


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path


def kaygraph_cli(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m kaygraph`` in ``workdir`` with a clean KAYGRAPH_* environment plus ``env``."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    base["HOME"] = str(workdir / "home")
    return subprocess.run(
        [sys.executable, "-m", "kaygraph", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**base, **env},
    )


def test_info_shows_version_extensions_and_config_origin(workdir: Path) -> None:
    config_file = workdir / "kaygraph.json"
    config_file.write_text('{"log_level": "DEBUG"}')

    result = kaygraph_cli(workdir, "info", KAYGRAPH_DEBUG="1")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("KayGraph 1.0.0 (Python ")
    for name in ext.EXTENSIONS:
        assert f"\n  {name} " in out
    for name in ext.EXTENSIONS:
        if ext.package_directory(name) is None:  # planned: said so, and no pip line that installs nothing
            line = f"  {name:<13}  planned    {ext.EXTENSIONS[name]}: not shipped in KayGraph 1.0.0 yet"
            assert line in out
    assert "pip install kaygraph[" not in out  # every pip line is quoted (zsh globs the brackets)
    assert f"Config: file {config_file}" in out
    assert "overridden by environment: KAYGRAPH_DEBUG" in out
    assert "Plugins:" in out


def test_info_without_a_file_says_where_it_looked(workdir: Path) -> None:
    result = kaygraph_cli(workdir, "info", KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD="1")

    assert result.returncode == 0, result.stderr
    assert f"Config: defaults (no file found; looked for {workdir / 'kaygraph.json'}" in result.stdout
    assert "discovery is off (KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD is set)" in result.stdout


def test_info_reports_a_broken_config_but_still_shows_the_rest(workdir: Path) -> None:
    (workdir / "kaygraph.json").write_text('{"debug": tru}')

    result = kaygraph_cli(workdir, "info")

    assert result.returncode == 1
    assert "Extensions:" in result.stdout
    assert f"Config: ERROR {workdir / 'kaygraph.json'}:1:11: invalid JSON" in result.stdout


def test_config_lists_every_value_with_its_source(workdir: Path) -> None:
    config_file = workdir / "kaygraph.json"
    config_file.write_text('{"persistence": {"backend": "redis"}}')

    result = kaygraph_cli(workdir, "config", KAYGRAPH_OBSERVABILITY_METRICS_PORT="9100")

    assert result.returncode == 0, result.stderr
    table, _, note = result.stdout.partition("\n\n")
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in table.splitlines()}
    assert rows["persistence.backend"] == ['"redis"', f"(file {config_file})"]
    assert rows["observability.metrics_port"] == ["9100", "(env KAYGRAPH_OBSERVABILITY_METRICS_PORT)"]
    planned = [name for name in ext.EXTENSIONS if ext.package_directory(name) is None]
    live = {key.partition(".")[0] for key in rows}
    assert live >= {"debug", "log_level", "persistence", "observability"}
    assert not live & set(planned)  # settings of planned extensions are not listed as if live
    if planned:
        sections = ", ".join(f"{name}.*" for name in planned)
        assert note == (
            f"{sections}: settings of planned extensions (not shipped in KayGraph 1.0.0), not shown; "
            f"`kaygraph config {planned[0]}` shows them\n"
        )


def test_config_of_a_planned_section_shows_it_with_a_note(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaygraph import cli

    monkeypatch.setattr(cli, "_planned_sections", lambda: ["ui"])  # as when ui is not shipped

    assert main(["config", "ui"]) == 0
    out, err = capsys.readouterr()
    assert '"127.0.0.1"' in out
    assert err == (
        "kaygraph: note: the ui extension is planned, not shipped in KayGraph 1.0.0: "
        "its settings do nothing yet\n"
    )


@pytest.mark.parametrize(
    ("args", "status"), [(["config"], 141), (["info"], 141), (["config", "--json"], 141), (["--help"], 0)]
)  # argparse itself ignores a failed write of --help and exits 0
def test_a_reader_that_stops_early_gets_no_traceback(workdir: Path, args: list[str], status: int) -> None:
    """`kaygraph config | head -1`: the closed pipe ends the command quietly (status 141, like SIGPIPE)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before kaygraph writes a byte
    try:
        done = subprocess.run(
            [sys.executable, "-m", "kaygraph", *args], stdout=write_end, stderr=subprocess.PIPE,
            text=True, cwd=workdir, env=env, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" line
    assert done.returncode == status


def test_config_hides_passwords_in_urls(workdir: Path) -> None:
    url = "postgresql://kay:s3cret@127.0.0.1:5432/runs"

    table = kaygraph_cli(workdir, "config", KAYGRAPH_PERSISTENCE_URL=url)
    as_json = kaygraph_cli(workdir, "config", "--json", "persistence.url", KAYGRAPH_PERSISTENCE_URL=url)

    assert '"postgresql://kay:***@127.0.0.1:5432/runs"' in table.stdout
    assert json.loads(as_json.stdout)["persistence.url"]["value"] == "postgresql://kay:***@127.0.0.1:5432/runs"
    assert "s3cret" not in table.stdout + as_json.stdout


def test_config_json_and_single_key(workdir: Path) -> None:
    result = kaygraph_cli(workdir, "config", "--json", "log_level", KAYGRAPH_LOG_LEVEL="warning")

    assert result.returncode == 0, result.stderr
    expected = {"log_level": {"value": "WARNING", "source": "env KAYGRAPH_LOG_LEVEL"}}
    assert json.loads(result.stdout) == expected


def test_config_errors_exit_2_with_the_message(workdir: Path) -> None:
    result = kaygraph_cli(workdir, "config", KAYGRAPH_UI_PORT="http")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "Config key 'ui.port' has value 'http' (from env KAYGRAPH_UI_PORT)" in result.stderr

    result = kaygraph_cli(workdir, "config", "ui.prot")
    assert result.returncode == 2
    assert "Did you mean 'ui.port'?" in result.stderr


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "info" in out
    assert "config" in out


@pytest.fixture
def extension_with_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A stand-in extension ('hologram', known only here) whose cli.py adds `kaygraph workers`."""
    package = tmp_path / "hologram"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "cli.py").write_text(
        "def register(subparsers):\n"
        "    parser = subparsers.add_parser('workers', help='list workers')\n"
        "    parser.add_argument('--count', type=int, default=1)\n"
        "    parser.set_defaults(func=lambda args: print('workers:', args.count) or 3)\n"
    )
    monkeypatch.setattr(ext, "__path__", [*ext.__path__, str(tmp_path)])
    monkeypatch.setitem(ext.EXTENSIONS, "hologram", "holographic graph projection")
    yield
    for name in ("kaygraph.ext.hologram.cli", "kaygraph.ext.hologram"):
        sys.modules.pop(name, None)
    ext.__dict__.pop("hologram", None)


@pytest.mark.usefixtures("extension_with_cli")
def test_extensions_add_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workers", "--count", "4"]) == 3
    assert capsys.readouterr().out == "workers: 4\n"


# -- regressions -------------------------------------------------------------------------------


def test_config_redacts_secrets_nested_in_object_values(workdir: Path) -> None:
    (workdir / "kaygraph.json").write_text(
        json.dumps(
            {
                "persistence": {"url": "redis://user:s3cret@h:6379/0"},
                "myplug": {
                    "token": "plain-token",
                    "dsn": "postgres://u:pw@h/db",
                    "nested": {"api_key": "k-123", "password": "hunter2", "hosts": ["amqp://a:b@q"]},
                    "level": "debug",
                },
            }
        )
    )

    table = kaygraph_cli(workdir, "config")
    as_json = kaygraph_cli(workdir, "config", "--json")
    nested = kaygraph_cli(workdir, "config", "myplug.nested.api_key")

    for result in (table, as_json, nested):
        assert result.returncode == 0, result.stderr
        for secret in ("s3cret", "plain-token", ":pw@", "k-123", "hunter2", ":b@"):
            assert secret not in result.stdout
    value = json.loads(as_json.stdout)["myplug"]["value"]
    assert value == {
        "token": "***",
        "dsn": "postgres://u:***@h/db",
        "nested": {"api_key": "***", "password": "***", "hosts": ["amqp://a:***@q"]},
        "level": "debug",
    }
    source = f"{workdir / 'kaygraph.json'})"
    assert nested.stdout.split() == ["myplug.nested.api_key", '"***"', "(file", source]


def test_config_accepts_a_section_and_a_nested_key(workdir: Path) -> None:
    (workdir / "kaygraph.json").write_text('{"ui": {"port": 80}, "myplug": {"options": {"level": 3}}}')

    section = kaygraph_cli(workdir, "config", "ui")
    inner = kaygraph_cli(workdir, "config", "--json", "myplug.options.level")

    assert section.returncode == 0, section.stderr
    keys = [line.split()[0] for line in section.stdout.splitlines()]
    assert keys[:3] == ["ui.enabled", "ui.host", "ui.port"] and all(key.startswith("ui.") for key in keys)
    assert any(line.split()[:2] == ["ui.port", "80"] for line in section.stdout.splitlines())
    assert inner.returncode == 0, inner.stderr
    assert json.loads(inner.stdout) == {
        "myplug.options.level": {"value": 3, "source": f"file {workdir / 'kaygraph.json'}"}
    }
    missing = kaygraph_cli(workdir, "config", "myplug.options.nope")
    assert missing.returncode == 2
    assert "Unknown config key 'myplug.options.nope'" in missing.stderr


def test_info_survives_a_plugin_that_calls_sys_exit_at_import(workdir: Path) -> None:
    site = workdir / "site"
    (site / "kaygraph_quits").mkdir(parents=True)
    (site / "kaygraph_quits" / "__init__.py").write_text("import sys\nsys.exit(3)\n")

    result = kaygraph_cli(workdir, "info", PYTHONPATH=str(site))

    assert result.returncode == 0, result.stderr
    assert "kaygraph_quits" in result.stdout
    assert "SystemExit" in result.stdout


def test_config_json_marks_planned_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kaygraph import cli

    monkeypatch.setattr(cli, "_planned_sections", lambda: ["ui"])

    assert main(["config", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ui.port"]["planned"] is True
    assert "planned" not in payload["persistence.backend"]
