"""kaygraph.Config: the node configuration object of KayGraph 0.3, distinct from the framework settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kaygraph
from kaygraph import Config
from kaygraph.core.exceptions import GraphDefinitionError


def test_config_get_set_update_to_dict() -> None:
    config = Config(model="small", temperature=0.2)

    assert config.get("model") == "small"
    assert config.get("missing") is None
    assert config.get("missing", 7) == 7

    config.set("model", "large")
    config.update(temperature=0.9, top_p=0.5)
    config.update({"seed": 1})
    assert config.to_dict() == {"model": "large", "temperature": 0.9, "top_p": 0.5, "seed": 1}

    exported = config.to_dict()
    exported["model"] = "changed"  # a copy: the config keeps its own values
    assert config.get("model") == "large"


def test_merge_returns_a_new_config_where_the_other_side_wins() -> None:
    base = Config(model="small", temperature=0.2)

    merged = base.merge(Config(temperature=0.9))
    from_dict = base.merge({"model": "large", "stream": True})

    assert merged.to_dict() == {"model": "small", "temperature": 0.9}
    assert from_dict.to_dict() == {"model": "large", "temperature": 0.2, "stream": True}
    assert base.to_dict() == {"model": "small", "temperature": 0.2}  # unchanged
    assert merged is not base and base.merge(None) == base and base.merge(None) is not base


def test_merge_rejects_what_is_not_settings() -> None:
    with pytest.raises(GraphDefinitionError, match=r"Config.merge\(\) takes a kaygraph.Config or a dict.*42"):
        Config().merge(42)  # type: ignore[arg-type]


def test_truthiness_repr_membership() -> None:
    assert not Config()
    assert Config(a=1)
    assert repr(Config(a=1)) == "Config({'a': 1})"
    assert "a" in Config(a=1) and "b" not in Config(a=1)
    assert Config(a=1) == Config(a=1) != Config(a=2)
    assert sorted(Config(b=1, a=2)) == ["a", "b"] and len(Config(b=1)) == 1


def test_node_config_is_exported_from_kaygraph_and_core() -> None:
    import kaygraph.core

    assert kaygraph.Config is kaygraph.core.Config is Config
    assert Config.__module__ == "kaygraph.core.node_config"


def test_framework_settings_stay_in_the_kaygraph_config_module(tmp_path: Path) -> None:
    settings_file = tmp_path / "kaygraph.json"
    settings_file.write_text(json.dumps({"log_level": "DEBUG"}))

    settings = kaygraph.config.Config(config_file=settings_file)
    positional = kaygraph.config.Config(str(settings_file))
    by_path = kaygraph.config.Config(path=settings_file)  # the name used before the spec's

    assert kaygraph.config.Config is not kaygraph.Config
    assert settings.get("log_level") == positional.get("log_level") == by_path.get("log_level") == "DEBUG"
    assert kaygraph.get_config is kaygraph.config.get_config
    with pytest.raises(TypeError, match="both config_file= and path="):
        kaygraph.config.Config(config_file=settings_file, path=settings_file)


def test_both_configs_are_reachable_lazily_in_a_fresh_interpreter() -> None:
    import subprocess
    import sys

    code = (
        "import sys, kaygraph\n"
        "assert 'kaygraph.config' not in sys.modules\n"
        "assert kaygraph.Config.__module__ == 'kaygraph.core.node_config'\n"
        "assert 'kaygraph.config' not in sys.modules\n"
        "assert kaygraph.config.Config.__module__ == 'kaygraph.config'\n"
        "from kaygraph import Config, config\n"
        "assert Config is kaygraph.Config and config is sys.modules['kaygraph.config']\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_the_framework_settings_class_is_rejected_as_node_config_with_a_pointer() -> None:
    from kaygraph.core.node_config import resolve_config

    settings = kaygraph.config.Config(search=False, env={})
    with pytest.raises(GraphDefinitionError, match=r"framework settings \(kaygraph.config.Config\)"):
        resolve_config(settings, "MyNode")
    assert resolve_config({"model": "m"}, "MyNode") == Config(model="m")
    assert resolve_config(None, "MyNode") == Config()


def test_node_settings_given_to_the_framework_config_point_to_kaygraph_config() -> None:
    with pytest.raises(
        TypeError, match=r"got model=, temperature=: .*kaygraph\.Config\(model=, temperature=\.\.\.\)"
    ):
        kaygraph.config.Config(model="small", temperature=0.2)  # type: ignore[call-arg]
    assert "kaygraph.config.Config file=" in repr(kaygraph.config.Config(search=False, env={}))
