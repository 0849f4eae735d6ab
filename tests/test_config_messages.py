"""Every configuration error in full: the key, the value, where it came from, what was expected and
how to fix it, with the context kept as attributes; one message per way a value can be wrong."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import kaygraph.config as config_module
from kaygraph.config import Config, Setting
from kaygraph.core.exceptions import ConfigurationError


def error_of(**kwargs: object) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        Config(search=False, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_an_empty_optional_variable_says_how_to_clear_it_and_what_the_default_is() -> None:
    error = error_of(env={"KAYGRAPH_PERSISTENCE_TTL": ""})
    assert str(error) == (
        "Config key 'persistence.ttl' is set but empty (from env KAYGRAPH_PERSISTENCE_TTL): expected an "
        "integer >= 1 or null; write null to clear it. Unset KAYGRAPH_PERSISTENCE_TTL to use the default "
        "(86400), or set it to a valid value."
    )
    assert (error.key, error.value, error.source) == ("persistence.ttl", "", "env KAYGRAPH_PERSISTENCE_TTL")


def test_an_empty_required_variable_has_no_null_hint() -> None:
    error = error_of(env={"KAYGRAPH_UI_PORT": " "})
    assert str(error) == (
        "Config key 'ui.port' is set but empty (from env KAYGRAPH_UI_PORT): expected an integer from 0 "
        "to 65535. Unset KAYGRAPH_UI_PORT to use the default (8080), or set it to a valid value."
    )
    assert error.value == ""


def test_an_empty_variable_whose_default_is_null_says_so() -> None:
    error = error_of(env={"KAYGRAPH_PERSISTENCE_URL": ""})
    assert "Unset KAYGRAPH_PERSISTENCE_URL to use the default (null), or set it" in str(error)
    assert "expected a string or null; write null to clear it." in str(error)


def test_an_empty_string_default_is_quoted() -> None:
    error = error_of(env={"KAYGRAPH_UI_HOST": ""})
    assert "to use the default ('127.0.0.1')" in str(error)


def test_a_wrong_value_in_a_section_variable_names_that_variable() -> None:
    error = error_of(env={"KAYGRAPH_PERSISTENCE": '{"ttl": "soon"}'})
    assert str(error) == (
        "Config key 'persistence.ttl' has value 'soon' (from env KAYGRAPH_PERSISTENCE): expected an "
        "integer >= 1 or null. Set KAYGRAPH_PERSISTENCE to a valid value or unset it."
    )
    assert (error.key, error.value, error.source) == ("persistence.ttl", "soon", "env KAYGRAPH_PERSISTENCE")


def test_a_wrong_value_in_a_file_says_where_to_fix_or_override_it(tmp_path: Path) -> None:
    path = tmp_path / "kaygraph.json"
    path.write_text(json.dumps({"ui": {"port": "x"}}))
    error = error_of(path=path)
    assert str(error) == (
        f"Config key 'ui.port' has value 'x' (from file {path}): expected an integer from 0 to 65535. "
        f"Fix it in {path}, or override it with KAYGRAPH_UI_PORT."
    )
    assert (error.key, error.value, error.source) == ("ui.port", "x", f"file {path}")


def test_a_wrong_value_at_runtime_asks_for_a_valid_one() -> None:
    config = Config(search=False, env={})
    with pytest.raises(ConfigurationError) as caught:
        config.set("ui.port", "x")
    assert str(caught.value) == (
        "Config key 'ui.port' has value 'x' (from set()): expected an integer from 0 to 65535. Pass a "
        "valid value."
    )
    assert caught.value.source == "set()"


def test_a_file_that_is_not_an_object_names_the_file_and_the_type(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    error = error_of(path=path)
    assert str(error) == (
        f'Config file {path} must contain a JSON object such as {{"log_level": "DEBUG"}}, got list.'
    )
    assert (error.value, error.source) == ([1, 2], f"file {path}")


def test_an_unreadable_file_names_the_file_the_reason_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"log_level": "DÉBUG"}'.encode("latin-1"))
    error = error_of(path=path)
    assert str(error).startswith(f"Cannot read config file {path}: 'utf-8' codec can't decode byte 0xc9")
    assert str(error).endswith(
        "Fix its permissions or encoding (UTF-8), or point KAYGRAPH_CONFIG at another file."
    )
    assert error.source == f"file {path}"


def test_a_utf8_file_with_non_ascii_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "utf8.json"
    path.write_bytes('{"observability": {"service_name": "café"}}'.encode())
    assert Config(path, search=False, env={}).get("observability.service_name") == "café"


def test_a_section_that_is_not_an_object_gives_an_example_key(tmp_path: Path) -> None:
    path = tmp_path / "section.json"
    path.write_text('{"ui": 5}')
    error = error_of(path=path)
    assert str(error) == (
        f"Config key 'ui' has value 5 (from file {path}): expected an object of ui settings, such as "
        "{'enabled': ...}."
    )
    assert (error.key, error.value) == ("ui", 5)


def test_an_unknown_key_gets_the_closest_suggestion_only_when_it_is_close() -> None:
    config = Config(search=False, env={})
    with pytest.raises(ConfigurationError) as caught:
        config.source_of("ui.prot")
    assert str(caught.value) == (
        "Unknown config key 'ui.prot'. Did you mean 'ui.port'? Run `kaygraph config` to list the keys."
    )
    assert caught.value.key == "ui.prot"
    with pytest.raises(ConfigurationError) as caught:
        config.source_of("ui.hostname_x")  # 0.7 alike 'ui.host': below the 0.75 cutoff, no guess
    assert str(caught.value) == "Unknown config key 'ui.hostname_x'. Run `kaygraph config` to list the keys."


def test_an_unknown_variable_warns_as_a_user_warning_naming_the_closest_variable() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Config(search=False, env={"KAYGRAPH_UI_PROT_X": "1"})
    assert [(w.category, str(w.message)) for w in caught] == [
        (
            UserWarning,
            "Environment variable KAYGRAPH_UI_PROT_X is not a KayGraph setting and is ignored. "
            "Did you mean 'KAYGRAPH_UI_PORT'?",
        )
    ]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (Setting("a", bool, False, ""), "true or false"),
        (Setting("a", int, 1, ""), "an integer"),
        (Setting("a", int, 1, "", minimum=0), "an integer >= 0"),
        (Setting("a", int, 1, "", minimum=0, maximum=9), "an integer from 0 to 9"),
        (Setting("a", int, None, "", nullable=True), "an integer or null"),
        (Setting("a", str, "x", ""), "a string"),
        (Setting("a", str, "x", "", nullable=True), "a string or null"),
        (Setting("a", str, "x", "", choices=("x", "y")), "one of 'x', 'y'"),
        (Setting("a", str, "x", "", choices=("x",), nullable=True), "one of 'x' or null"),
    ],
)
def test_what_a_valid_value_looks_like(setting: Setting, expected: str) -> None:
    assert setting.expected() == expected


def test_the_module_names_a_missing_attribute() -> None:
    with pytest.raises(AttributeError) as caught:
        config_module.no_such_thing  # noqa: B018
    assert str(caught.value) == "module 'kaygraph.config' has no attribute 'no_such_thing'"


def test_node_settings_given_to_the_framework_config_say_where_they_belong() -> None:
    with pytest.raises(TypeError) as caught:
        Config(search=False, env={}, model="gpt", retries=3)  # type: ignore[call-arg]
    assert str(caught.value) == (
        "kaygraph.config.Config() got model=, retries=: it loads KayGraph's own settings (config_file=, "
        "env=, search=). Settings for your nodes go in kaygraph.Config(model=, retries=...), passed as "
        "config= to a node or graph."
    )


def test_config_file_and_path_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as caught:
        Config(tmp_path / "a.json", path=tmp_path / "b.json", env={})
    assert str(caught.value) == (
        "kaygraph.config.Config() got both config_file= and path= (the same setting); pass only config_file="
    )


def test_a_missing_config_file_argument_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.json"
    error = error_of(config_file=missing)
    assert str(error) == (
        f"KayGraph settings file {missing} does not exist "
        "(given as kaygraph.config.Config(config_file=...)); "
        "pass the path of a JSON file."
    )
    assert (error.key, error.source) == (None, f"file {missing}")


def test_a_kaygraph_config_naming_no_file_is_an_error_with_the_variable_and_its_value() -> None:
    error = error_of(env={"KAYGRAPH_CONFIG": "nowhere/settings.json"})
    assert str(error) == (
        "KAYGRAPH_CONFIG='nowhere/settings.json' does not name an existing file; fix the path or unset "
        "the variable."
    )
    assert (error.key, error.value, error.source) == (
        "KAYGRAPH_CONFIG",
        "nowhere/settings.json",
        "env KAYGRAPH_CONFIG",
    )


def test_a_section_variable_that_is_not_json_names_the_variable_the_text_and_the_reason() -> None:
    error = error_of(env={"KAYGRAPH_UI": "{port: 1}"})
    assert str(error) == (
        "KAYGRAPH_UI must hold a JSON object of ui settings, got '{port: 1}' (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1))."
    )
    assert (error.key, error.value, error.source) == ("ui", "{port: 1}", "env KAYGRAPH_UI")


def test_a_section_that_is_not_an_object_names_its_source(tmp_path: Path) -> None:
    path = tmp_path / "kaygraph.json"
    path.write_text(json.dumps({"scheduler": 5}))
    assert error_of(path=path).source == f"file {path}"
    assert error_of(env={"KAYGRAPH_SCHEDULER": "5"}).source == "env KAYGRAPH_SCHEDULER"


def test_a_bad_boolean_variable_lists_every_accepted_spelling() -> None:
    error = error_of(env={"KAYGRAPH_DEBUG": "maybe"})
    assert str(error) == (
        "Config key 'debug' has value 'maybe' (from env KAYGRAPH_DEBUG): expected true or false (also "
        "1/0, yes/no, on/off). Set KAYGRAPH_DEBUG to a valid value or unset it."
    )


def test_invalid_json_in_a_file_names_line_column_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "kaygraph.json"
    path.write_text('{\n  "debug": tru\n}\n')
    error = error_of(path=path)
    assert str(error) == (
        f"{path}:2:12: invalid JSON in config file: Expecting value. Fix the file or point KAYGRAPH_CONFIG "
        "at another one."
    )
    assert error.source == f"file {path}"


def test_a_config_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "utf8.json"
    path.write_bytes('{"observability": {"service_name": "café"}}'.encode())
    assert Config(path, search=False, env={}).get("observability.service_name") == "café"
    script = (
        "import sys; from kaygraph.config import Config; "
        "sys.stdout.buffer.write(Config(sys.argv[1], search=False, env={})"
        ".get('observability.service_name').encode('utf-8'))"
    )
    # The C locale without coercion or UTF-8 mode: open() would default to ASCII here.
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], env=env, capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.decode("utf-8") == "café"


def test_every_unknown_variable_warns_once_each() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Config(search=False, env={"KAYGRAPH_FIRST_THING": "1", "KAYGRAPH_SECOND_THING": "2"})
        Config(search=False, env={"KAYGRAPH_FIRST_THING": "1"})
    assert sorted(str(warning.message) for warning in caught) == [
        "Environment variable KAYGRAPH_FIRST_THING is not a KayGraph setting and is ignored.",
        "Environment variable KAYGRAPH_SECOND_THING is not a KayGraph setting and is ignored.",
    ]
