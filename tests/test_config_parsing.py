"""Environment values are parsed by the key's type: both sides of every limit, case and whitespace
of every spelling, for every key of the schema (so a key added later is covered too)."""

from __future__ import annotations

import uuid
import warnings

import pytest

from kaygraph.config import SCHEMA, Config, env_var_for
from kaygraph.core.exceptions import ConfigurationError

BOOL_KEYS = [key for key, setting in SCHEMA.items() if setting.kind is bool]
INT_KEYS = [key for key, setting in SCHEMA.items() if setting.kind is int]
NULLABLE_KEYS = [key for key, setting in SCHEMA.items() if setting.nullable]
CHOICE_KEYS = [key for key, setting in SCHEMA.items() if setting.choices]
PLAIN_STRING_KEYS = [
    key
    for key, setting in SCHEMA.items()
    if setting.kind is str and not setting.choices and not setting.nullable
]

# Each spelling in every case a user types, with the whitespace a .env file or a shell leaves.
TRUE_TEXTS = ["true", "TRUE", "True", "tRuE", "1", "yes", "YES", "Yes", "on", "ON"]
TRUE_TEXTS += [" true", "TRUE\r", "\tyes\n"]
FALSE_TEXTS = ["false", "FALSE", "False", "0", "no", "NO", "off", "OFF", "Off", " false ", "OFF\r\n"]
NOT_BOOLS = ["t", "f", "y", "n", "2", "-1", "truee", "tru", "yes please", "enabled", "null", "none"]


def parse(key: str, text: str) -> object:
    """The value ``key`` gets from its environment variable set to ``text``."""
    return Config(search=False, env={env_var_for(key): text}).get(key)


def test_the_schema_has_keys_of_every_parsed_type() -> None:
    # Guards the parametrizations below from silently covering nothing.
    assert BOOL_KEYS and INT_KEYS and NULLABLE_KEYS and CHOICE_KEYS and PLAIN_STRING_KEYS


@pytest.mark.parametrize("key", BOOL_KEYS)
@pytest.mark.parametrize("text", TRUE_TEXTS)
def test_every_true_spelling_in_any_case_and_whitespace(key: str, text: str) -> None:
    assert parse(key, text) is True


@pytest.mark.parametrize("key", BOOL_KEYS)
@pytest.mark.parametrize("text", FALSE_TEXTS)
def test_every_false_spelling_in_any_case_and_whitespace(key: str, text: str) -> None:
    assert parse(key, text) is False


@pytest.mark.parametrize("key", BOOL_KEYS)
@pytest.mark.parametrize("text", NOT_BOOLS)
def test_anything_else_is_not_a_bool_and_names_the_variable(key: str, text: str) -> None:
    variable = env_var_for(key)
    with pytest.raises(ConfigurationError) as caught:
        parse(key, text)
    message = str(caught.value)
    assert variable in message and repr(text) in message
    assert "expected true or false (also 1/0, yes/no, on/off)" in message
    assert (caught.value.key, caught.value.source) == (key, f"env {variable}")


@pytest.mark.parametrize("key", INT_KEYS)
def test_integers_are_stripped_and_signed(key: str) -> None:
    setting = SCHEMA[key]
    inside = setting.minimum if setting.minimum is not None else 5
    assert parse(key, f" {inside}\r\n") == inside
    assert parse(key, f"+{inside}") == inside
    assert parse(key, f"\t0{inside}") == inside  # a leading zero is still decimal, never octal


@pytest.mark.parametrize("key", [key for key in INT_KEYS if SCHEMA[key].minimum is not None])
def test_the_minimum_is_allowed_and_one_below_is_not(key: str) -> None:
    minimum = SCHEMA[key].minimum
    assert minimum is not None
    assert parse(key, str(minimum)) == minimum
    with pytest.raises(ConfigurationError, match=f"has value {minimum - 1} .*>= {minimum}|from {minimum} to"):
        parse(key, str(minimum - 1))


@pytest.mark.parametrize("key", [key for key in INT_KEYS if SCHEMA[key].maximum is not None])
def test_the_maximum_is_allowed_and_one_above_is_not(key: str) -> None:
    maximum = SCHEMA[key].maximum
    assert maximum is not None
    assert parse(key, str(maximum)) == maximum
    with pytest.raises(ConfigurationError, match=f"has value {maximum + 1} .*to {maximum}"):
        parse(key, str(maximum + 1))


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("text", ["1.0", "1e3", "0x10", "1 000", "one", "true", "- 1", "++1"])
def test_what_is_not_a_decimal_integer_is_an_error(key: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=env_var_for(key)):
        parse(key, text)


def test_a_runtime_integer_is_checked_against_both_limits() -> None:
    config = Config(search=False, env={})
    config.set("ui.port", 0)
    config.set("ui.port", 65535)
    for bad in (-1, 65536, True, "8080"):
        with pytest.raises(ConfigurationError, match=r"'ui\.port'"):
            config.set("ui.port", bad)
    assert config.get("ui.port") == 65535  # a refused value changes nothing


@pytest.mark.parametrize("key", NULLABLE_KEYS)
@pytest.mark.parametrize("text", ["null", "NULL", "Null", "none", "NONE", "None", " null ", "none\r"])
def test_null_in_any_case_and_whitespace_clears_an_optional_key(key: str, text: str) -> None:
    assert parse(key, text) is None


@pytest.mark.parametrize("key", [key for key in INT_KEYS if not SCHEMA[key].nullable])
def test_null_does_not_clear_a_required_integer(key: str) -> None:
    with pytest.raises(ConfigurationError, match=env_var_for(key)):
        parse(key, "null")


@pytest.mark.parametrize("key", CHOICE_KEYS)
def test_choices_match_in_any_case_and_whitespace_and_come_back_canonical(key: str) -> None:
    for choice in SCHEMA[key].choices:
        for text in (choice, choice.upper(), choice.lower(), choice.title(), f" {choice}\r\n"):
            assert parse(key, text) == choice


@pytest.mark.parametrize("key", CHOICE_KEYS)
def test_a_value_outside_the_choices_lists_them(key: str) -> None:
    setting = SCHEMA[key]
    with pytest.raises(ConfigurationError) as caught:
        parse(key, setting.choices[0] + "x")
    assert "one of " + ", ".join(repr(choice) for choice in setting.choices) in str(caught.value)


@pytest.mark.parametrize("key", PLAIN_STRING_KEYS)
def test_strings_are_stripped_but_keep_their_case_and_inner_spaces(key: str) -> None:
    assert parse(key, "  Mixed Case Value\r\n") == "Mixed Case Value"
    assert parse(key, '" padded "') == " padded "  # JSON quotes keep whitespace on purpose


@pytest.mark.parametrize("key", [*BOOL_KEYS, *INT_KEYS, *PLAIN_STRING_KEYS])
@pytest.mark.parametrize("text", ["", " ", "\r\n", "\t"])
def test_an_empty_or_blank_variable_is_an_error_for_every_type(key: str, text: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{key!r} is set but empty"):
        parse(key, text)


def test_variables_that_are_not_settings_never_warn_while_unknown_ones_do() -> None:
    """The control variables stay silent, and the check demonstrably runs: an unknown variable in the
    same environment warns (its name is fresh, so an earlier test cannot have used up the warning)."""
    unknown = f"KAYGRAPH_NOT_A_SETTING_{uuid.uuid4().hex[:8].upper()}"
    env = {
        "KAYGRAPH_CONFIG": "",
        "KAYGRAPH_PLUGINS": "a,b",
        "KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD": "1",
        "KAYGRAPH_REQUIRE_SERVICES": "1",
        "KAYGRAPH_TEST_REDIS_URL": "redis://127.0.0.1:6379/15",
        "KAYGRAPH_TEST_ANYTHING_ELSE": "x",
        unknown: "1",
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Config(search=False, env=env)
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"Environment variable {unknown} is not a KayGraph setting")
