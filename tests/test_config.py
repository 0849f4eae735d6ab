"""Configuration: precedence, file lookup, environment mapping, validation errors and laziness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import kaygraph.config as config_module
from kaygraph.config import SCHEMA, Config, configure, get_config
from kaygraph.core.exceptions import ConfigurationError


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory and home, so no real config file is found."""
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    return work


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


# -- defaults and precedence -------------------------------------------------------------------


def test_defaults_match_the_schema(workdir: Path) -> None:
    config = Config()

    assert config.file is None
    assert config.get("ui.host") == "127.0.0.1"  # never the whole network by default
    assert config.get("persistence.backend") == "sqlite"
    assert config.get("persistence.ttl") == 86400
    assert config.get("observability.metrics_port") == 9090
    assert config.get("observability.otlp_endpoint") is None
    for key, setting in SCHEMA.items():
        assert config.get(key) == setting.default
        assert config.source_of(key) == "default"


def test_precedence_defaults_file_env_runtime(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = write_json(
        workdir / "kaygraph.json",
        {"log_level": "WARNING", "debug": True, "persistence": {"backend": "redis", "ttl": 60}},
    )
    monkeypatch.setenv("KAYGRAPH_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("KAYGRAPH_PERSISTENCE_TTL", "120")
    config = Config()
    config.configure(persistence={"ttl": 5})

    assert (config.get("persistence.keep_snapshots"), config.source_of("persistence.keep_snapshots")) == (
        10,
        "default",
    )
    assert (config.get("debug"), config.source_of("debug")) == (True, f"file {file}")
    assert (config.get("log_level"), config.source_of("log_level")) == ("DEBUG", "env KAYGRAPH_LOG_LEVEL")
    assert (config.get("persistence.ttl"), config.source_of("persistence.ttl")) == (5, "configure()")
    assert config.get("persistence.backend") == "redis"

    config.reset()
    assert (config.get("persistence.ttl"), config.source_of("persistence.ttl")) == (
        120,
        "env KAYGRAPH_PERSISTENCE_TTL",
    )


def test_partial_section_keeps_the_other_defaults(workdir: Path) -> None:
    write_json(workdir / "kaygraph.json", {"observability": {"metrics_enabled": True}})

    section = Config().section("observability")

    assert section["metrics_enabled"] is True
    assert section["metrics_port"] == 9090
    assert section["metrics_host"] == "127.0.0.1"
    assert section["service_name"] == "kaygraph"


def test_dotted_keys_are_accepted_in_files(workdir: Path) -> None:
    write_json(workdir / "kaygraph.json", {"ui.port": 8181})
    assert Config().get("ui.port") == 8181


def test_set_overrides_and_reports_its_source(workdir: Path) -> None:
    config = Config()
    config.set("scheduler.backend", "redis")
    config.set("ui", {"enabled": True})

    assert config.get("scheduler.backend") == "redis"
    assert config.source_of("scheduler.backend") == "set()"
    section = config.get("ui")
    expected = {"enabled": True, "host": "127.0.0.1", "port": 8080}
    assert {key: section[key] for key in expected} == expected
    assert section["token"] is None  # the other keys keep their defaults
    assert config.to_dict()["ui"]["enabled"] is True


# -- where the file comes from -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["kaygraph.json", ".kaygraph.json"])
def test_file_in_the_current_directory(workdir: Path, name: str) -> None:
    file = write_json(workdir / name, {"log_level": "ERROR"})
    config = Config()
    assert config.file == file
    assert config.get("log_level") == "ERROR"


def test_file_in_the_home_directory(workdir: Path) -> None:
    file = write_json(Path(os.environ["HOME"]) / ".kaygraph" / "config.json", {"log_level": "ERROR"})
    config = Config()
    assert config.file == file
    assert config.source_of("log_level") == f"file {file}"


def test_project_file_wins_over_home_file(workdir: Path) -> None:
    write_json(Path(os.environ["HOME"]) / ".kaygraph" / "config.json", {"log_level": "ERROR"})
    write_json(workdir / "kaygraph.json", {"log_level": "CRITICAL"})
    assert Config().get("log_level") == "CRITICAL"


def test_kaygraph_config_variable_wins_over_the_search(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_json(workdir / "kaygraph.json", {"log_level": "CRITICAL"})
    chosen = write_json(workdir / "elsewhere" / "settings.json", {"log_level": "ERROR"})
    monkeypatch.setenv("KAYGRAPH_CONFIG", str(chosen))

    config = Config()

    assert config.file == chosen
    assert config.get("log_level") == "ERROR"


def test_explicit_path_wins_over_everything(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAYGRAPH_CONFIG", str(write_json(workdir / "a.json", {"log_level": "ERROR"})))
    explicit = write_json(workdir / "b.json", {"log_level": "DEBUG"})
    assert Config(explicit).get("log_level") == "DEBUG"


def test_missing_explicit_files_are_errors(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.json does not exist"):
        Config(workdir / "nope.json")
    monkeypatch.setenv("KAYGRAPH_CONFIG", "missing.json")
    with pytest.raises(ConfigurationError, match=r"KAYGRAPH_CONFIG='missing\.json'") as caught:
        Config()
    assert caught.value.source == "env KAYGRAPH_CONFIG"


# -- the environment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "text", "key", "value"),
    [
        ("KAYGRAPH_LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
        ("KAYGRAPH_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("KAYGRAPH_OBSERVABILITY_METRICS_PORT", "9100", "observability.metrics_port", 9100),
        ("KAYGRAPH_SCHEDULER_BACKEND", "redis", "scheduler.backend", "redis"),
        ("KAYGRAPH_DEBUG", "true", "debug", True),
        ("KAYGRAPH_DEBUG", "0", "debug", False),
        ("KAYGRAPH_OBSERVABILITY_TRACING_ENABLED", "yes", "observability.tracing_enabled", True),
        ("KAYGRAPH_PERSISTENCE_TTL", "null", "persistence.ttl", None),
        (
            "KAYGRAPH_PERSISTENCE_URL",
            "redis://127.0.0.1:6379/0",
            "persistence.url",
            "redis://127.0.0.1:6379/0",
        ),
        ("KAYGRAPH_OBSERVABILITY_SERVICE_NAME", "123", "observability.service_name", "123"),
        ("KAYGRAPH_OBSERVABILITY_SERVICE_NAME", '"quoted"', "observability.service_name", "quoted"),
        ("KAYGRAPH_PERSISTENCE_BACKEND", "SQLite", "persistence.backend", "sqlite"),
    ],
)
def test_environment_variables_map_to_keys_with_types(
    variable: str, text: str, key: str, value: object
) -> None:
    config = Config(search=False, env={variable: text})

    assert config.get(key) == value
    assert type(config.get(key)) is type(value)
    assert config.source_of(key) == f"env {variable}"


def test_a_section_variable_takes_a_json_object() -> None:
    config = Config(search=False, env={"KAYGRAPH_PERSISTENCE": '{"backend": "memory", "ttl": 30}'})

    assert config.get("persistence.backend") == "memory"
    assert config.get("persistence.ttl") == 30
    assert config.get("persistence.directory") == ".kaygraph"
    with pytest.raises(ConfigurationError, match="KAYGRAPH_PERSISTENCE must hold a JSON object"):
        Config(search=False, env={"KAYGRAPH_PERSISTENCE": "memory"})


def test_unknown_environment_variable_warns_once_with_a_suggestion() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Config(search=False, env={"KAYGRAPH_LOG_LEVLE": "DEBUG"})
        Config(search=False, env={"KAYGRAPH_LOG_LEVLE": "DEBUG"})

    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1
    assert "KAYGRAPH_LOG_LEVLE" in messages[0]
    assert "Did you mean 'KAYGRAPH_LOG_LEVEL'" in messages[0]


# -- errors ------------------------------------------------------------------------------------


def test_malformed_file_names_file_line_and_column(workdir: Path) -> None:
    path = workdir / "kaygraph.json"
    path.write_text('{\n  "debug": true,\n  "log_level": "INFO",,\n}\n')

    with pytest.raises(ConfigurationError) as caught:
        Config()

    assert str(caught.value).startswith(f"{path}:3:23: invalid JSON in config file")
    assert caught.value.source == f"file {path}"


@pytest.mark.parametrize(
    ("data", "key", "value", "expected"),
    [
        (
            {"observability": {"metrics_port": "abc"}},
            "observability.metrics_port",
            "abc",
            "an integer from 0 to 65535",
        ),
        ({"debug": "yes"}, "debug", "yes", "true or false"),
        ({"persistence": {"backend": "mongo"}}, "persistence.backend", "mongo", "'memory', 'sqlite'"),
        ({"persistence": {"ttl": 0}}, "persistence.ttl", 0, "an integer >= 1 or null"),
        ({"ui": {"host": None}}, "ui.host", None, "a string"),
        ({"distributed": {"workers": True}}, "distributed.workers", True, "an integer >= 1"),
    ],
    ids=["port-text", "bool-text", "backend-choice", "ttl-zero", "host-null", "workers-bool"],
)
def test_wrong_value_in_file_names_key_value_and_file(
    workdir: Path, data: dict[str, object], key: str, value: object, expected: str
) -> None:
    path = write_json(workdir / "settings.json", data)

    with pytest.raises(ConfigurationError) as caught:
        Config(path)

    error = caught.value
    assert (error.key, error.value, error.source) == (key, value, f"file {path}")
    assert f"Config key {key!r} has value {value!r} (from file {path})" in str(error)
    assert expected in str(error)


def test_wrong_value_in_environment_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config(search=False, env={"KAYGRAPH_OBSERVABILITY_METRICS_PORT": "abc"})

    error = caught.value
    assert (error.key, error.value) == ("observability.metrics_port", "abc")
    assert error.source == "env KAYGRAPH_OBSERVABILITY_METRICS_PORT"
    assert "Set KAYGRAPH_OBSERVABILITY_METRICS_PORT to a valid value" in str(error)


def test_wrong_value_at_runtime_changes_nothing() -> None:
    config = Config(search=False, env={})

    with pytest.raises(ConfigurationError, match=r"'ui.port' has value 'x' \(from configure\(\)\)"):
        config.configure(debug=True, ui={"port": "x"})

    assert config.get("debug") is False  # validated as a whole before anything changed


def test_a_section_must_be_an_object(workdir: Path) -> None:
    with pytest.raises(ConfigurationError, match="expected an object of persistence settings"):
        Config(write_json(workdir / "c.json", {"persistence": "redis"}))
    with pytest.raises(ConfigurationError, match="must contain a JSON object"):
        Config(write_json(workdir / "d.json", [1, 2]))


def test_unknown_key_warns_once_and_is_kept(workdir: Path) -> None:
    write_json(workdir / "kaygraph.json", {"persistance": {"backend": "redis"}, "my_plugin": {"a": 1}})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = Config()
        Config()
        config.reload()

    messages = sorted(str(warning.message) for warning in caught)
    assert len(messages) == 2
    assert "'my_plugin'" in messages[0]
    assert "Unknown config key 'persistance' (from file " in messages[1]
    assert "Did you mean 'persistence'" in messages[1]
    assert config.get("my_plugin.a") == 1
    assert config.get("persistence.backend") == "sqlite"


def test_source_of_an_unknown_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigurationError, match=r"Did you mean 'observability\.metrics_port'"):
        Config(search=False, env={}).source_of("observability.metric_port")


# -- the global configuration ------------------------------------------------------------------


def test_global_config_is_built_once_and_reset_for_tests(workdir: Path) -> None:
    first = get_config()
    assert get_config() is first
    assert config_module.config is first  # the spec's module-level name, served lazily

    configure(debug=True)
    assert get_config().get("debug") is True
    assert get_config().source_of("debug") == "configure()"

    config_module._reset_for_tests()
    assert get_config() is not first
    assert get_config().get("debug") is False


def test_a_broken_file_does_not_break_import_kaygraph(workdir: Path) -> None:
    (workdir / "kaygraph.json").write_text("{broken")
    code = (
        "import kaygraph, kaygraph.config\n"
        "try:\n"
        "    kaygraph.get_config()\n"
        "except kaygraph.KayGraphError as exc:\n"
        "    print('raised:', exc)\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAYGRAPH_")}

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=workdir, env=env
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"raised: {workdir / 'kaygraph.json'}:1:2: invalid JSON")


def test_global_config_retries_after_the_file_is_fixed(workdir: Path) -> None:
    (workdir / "kaygraph.json").write_text("{broken")
    with pytest.raises(ConfigurationError):
        get_config()

    write_json(workdir / "kaygraph.json", {"debug": True})
    assert get_config().debug is True


# -- regressions -------------------------------------------------------------------------------


def test_reset_of_a_section_name_drops_every_key_of_the_section() -> None:
    config = Config(search=False, env={"KAYGRAPH_UI_PORT": "2"})
    config.configure(ui={"port": 3, "host": "localhost"}, debug=True)
    with pytest.warns(UserWarning, match="Unknown config key 'myplugin'"):
        config.set("myplugin", {"token": "x"})

    config.reset("ui")
    assert config.get("ui.port") == 2
    assert config.source_of("ui.port") == "env KAYGRAPH_UI_PORT"
    assert config.get("ui.host") == "127.0.0.1"
    assert config.get("debug") is True  # other keys keep their overrides
    config.reset("myplugin")
    assert config.get("myplugin") is None


@pytest.mark.parametrize(
    ("variable", "text"),
    [
        ("KAYGRAPH_UI_PORT", "99999"),
        ("KAYGRAPH_OBSERVABILITY_METRICS_PORT", "65536"),
        ("KAYGRAPH_UI_PORT", "9_100"),
        ("KAYGRAPH_UI_PORT", "\uff18\uff10\uff18\uff10"),  # full-width digits
        ("KAYGRAPH_UI_PORT", "8080.0"),
    ],
)
def test_integers_in_the_environment_are_ascii_digits_within_range(variable: str, text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Config(search=False, env={variable: text})
    assert variable in str(caught.value)
    assert "an integer from 0 to 65535" in str(caught.value)
    assert caught.value.source == f"env {variable}"


def test_integers_with_a_sign_or_leading_zeros_still_parse() -> None:
    config = Config(search=False, env={"KAYGRAPH_UI_PORT": " 08080 ", "KAYGRAPH_DISTRIBUTED_WORKERS": "+4"})
    assert config.get("ui.port") == 8080
    assert config.get("distributed.workers") == 4


def test_string_values_from_the_environment_are_stripped() -> None:
    env = {"KAYGRAPH_UI_HOST": "127.0.0.1\r", "KAYGRAPH_SCHEDULER_TIMEZONE": " UTC\n"}
    config = Config(search=False, env=env)
    assert config.get("ui.host") == "127.0.0.1"
    assert config.get("scheduler.timezone") == "UTC"


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("KAYGRAPH_PERSISTENCE_TTL", "persistence.ttl"),
        ("KAYGRAPH_PERSISTENCE_URL", "persistence.url"),
        ("KAYGRAPH_OBSERVABILITY_METRICS_HOST", "observability.metrics_host"),
        ("KAYGRAPH_UI_HOST", "ui.host"),
    ],
)
def test_an_empty_variable_is_an_error_naming_it_not_a_null(variable: str, key: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{key!r} is set but empty") as caught:
        Config(search=False, env={variable: "  "})
    assert f"Unset {variable}" in str(caught.value)
    assert caught.value.key == key


def test_only_null_or_none_clear_an_optional_key() -> None:
    assert Config(search=False, env={"KAYGRAPH_PERSISTENCE_TTL": "null"}).get("persistence.ttl") is None
    assert Config(search=False, env={"KAYGRAPH_PERSISTENCE_TTL": "None"}).get("persistence.ttl") is None


# -- where the file was looked for, and reading back -------------------------------------------


def test_searched_lists_every_location_in_order_or_only_the_file_named(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["HOME"])
    assert Config(env={}).searched == [
        str(workdir / "kaygraph.json"),
        str(workdir / ".kaygraph.json"),
        str(home / ".kaygraph" / "config.json"),
        "/etc/kaygraph/config.json",
    ]
    named = write_json(workdir / "conf" / "named.json", {})
    assert Config(named, env={}).searched == [str(named)]
    assert Config(env={"KAYGRAPH_CONFIG": str(named)}).searched == [str(named)]


def test_without_a_home_directory_the_search_skips_only_the_home_location(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)  # "~" cannot be resolved

    assert Config(env={}).searched == [
        str(workdir / "kaygraph.json"),
        str(workdir / ".kaygraph.json"),
        "/etc/kaygraph/config.json",
    ]


def test_test_and_unknown_variables_do_not_stop_the_variables_after_them() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = Config(
            search=False,
            env={
                "KAYGRAPH_AAA_UNKNOWN": "1",
                "KAYGRAPH_TEST_X": "1",
                "KAYGRAPH_DEBUG": "1",
                "KAYGRAPH_UI_PORT": "81",
            },
        )
    assert (config.get("debug"), config.get("ui.port")) == (True, 81)


def test_unknown_keys_from_every_layer_are_listed_and_nested(workdir: Path) -> None:
    path = write_json(
        workdir / "kaygraph.json", {"from_file": 1, "my_plugin": {"option": {"deep": 2}, "flat": 5}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = Config(path, env={"KAYGRAPH_DEBUG": "1"})
        config.set("at.run.time", 3)

    assert [key for key, _, _ in config.items() if key not in SCHEMA] == [
        "at.run.time",
        "from_file",
        "my_plugin",
    ]
    assert config.get("my_plugin.option.deep") == 2
    assert config.get("my_plugin.option.absent", "fallback") == "fallback"
    assert config.get("my_plugin.flat.deeper", "fallback") == "fallback"  # 5 holds no keys
    assert config.get("nobody_set_this", 7) == 7
    nested = config.to_dict()
    assert nested["debug"] is True and nested["from_file"] == 1
    assert nested["at"] == {"run.time": 3}


def test_repr_names_the_file_read(workdir: Path) -> None:
    path = write_json(workdir / "kaygraph.json", {})
    assert repr(Config(env={})) == f"<kaygraph.config.Config file={str(path)!r}>"
    assert repr(Config(search=False, env={})) == "<kaygraph.config.Config file=None>"


def test_the_module_level_configure_takes_a_mapping_and_keywords(workdir: Path) -> None:
    configure({"persistence.backend": "memory"}, debug=True)
    assert (get_config().get("persistence.backend"), get_config().get("debug")) == ("memory", True)
    assert get_config().source_of("persistence.backend") == "configure()"
