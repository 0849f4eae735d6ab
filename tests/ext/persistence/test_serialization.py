"""The JSON serializer on its own: what checkpoint data may make it do, and what it keeps."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import sys
import zoneinfo
from typing import Any

import pytest

from kaygraph.core.exceptions import SerializationError
from kaygraph.ext.persistence.serialization import JSONSerializer, register_type

serialization_module = importlib.import_module("kaygraph.ext.persistence.serialization")


def round_trip(value: Any) -> Any:
    serializer = JSONSerializer()
    return serializer.decode(json.loads(serializer.encode(value, "shared['x']")))


@dataclasses.dataclass
class Kept:
    a: int


def test_checkpoint_data_never_imports_a_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "kg_side_effect_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nimport enum\nclass X(enum.Enum):\n    A = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    crafted = {"__kg__": "enum", "cls": "kg_side_effect_module:X", "v": 1}
    with pytest.raises(SerializationError, match=r"'kg_side_effect_module:X' is not known") as caught:
        JSONSerializer().decode({"docs": [crafted]})
    assert "register_type" in str(caught.value) and "import 'kg_side_effect_module'" in str(caught.value)
    assert caught.value.key_path == "['docs'][0]"
    assert not marker.exists() and "kg_side_effect_module" not in sys.modules


def test_only_dataclasses_enums_and_pydantic_models_are_instantiated() -> None:
    crafted = {"__kg__": "dataclass", "cls": "kaygraph.core.graph:Graph", "v": {}}
    with pytest.raises(SerializationError, match="is not a dataclass"):
        JSONSerializer().decode(crafted)
    aliased = {"__kg__": "dataclass", "cls": "tests.ext.persistence.test_serialization:Alias", "v": {"a": 1}}
    with pytest.raises(SerializationError, match="not known"):
        JSONSerializer().decode(aliased)  # found only under its own module:qualname


Alias = Kept


def test_classes_of_imported_modules_and_registered_classes_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The registry is process-wide: start from a copy, so the test also passes a second time in
    # one process (mutmut runs the tests again in the process that first collected them).
    monkeypatch.setattr(serialization_module, "_registered", dict(serialization_module._registered))
    assert round_trip(Kept(3)) == Kept(3)

    @dataclasses.dataclass
    class Moved:
        b: str

    Moved.__module__, Moved.__qualname__ = "kg_not_a_module", "Moved"
    with pytest.raises(SerializationError, match="not known"):
        round_trip(Moved("x"))
    assert register_type(Moved) is Moved
    assert round_trip(Moved("x")) == Moved("x")
    with pytest.raises(SerializationError, match="register_type"):
        register_type(int)


def test_classes_defined_in_a_function_are_refused_when_encoding() -> None:
    @dataclasses.dataclass
    class Local:
        a: int

    with pytest.raises(
        SerializationError, match=r"shared\['x'\]\['deep'\] of type .*<locals>.Local"
    ) as caught:
        JSONSerializer().encode({"deep": Local(1)}, "shared['x']")
    assert caught.value.key_path == "shared['x']['deep']"
    assert "module level" in str(caught.value)


def test_zoneinfo_datetimes_keep_their_zone_and_fold() -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    before_dst = dt.datetime(2026, 3, 29, 1, 30, tzinfo=paris)
    restored = round_trip(before_dst)
    assert restored.tzinfo == paris and restored == before_dst
    day = dt.timedelta(days=1)
    assert (restored + day).utcoffset() == (before_dst + day).utcoffset() == dt.timedelta(hours=2)
    ambiguous = dt.datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=paris)
    again = round_trip(ambiguous)
    assert again.fold == 1 and again.utcoffset() == dt.timedelta(hours=1)
    assert round_trip(dt.datetime(2026, 1, 1, fold=1)).fold == 1
    fixed = dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert round_trip(fixed).utcoffset() == dt.timedelta(hours=3)


@pytest.mark.parametrize(
    "data",
    [
        {"__kg__": "nope"},
        {"__kg__": "tuple"},
        {"__kg__": "datetime", "v": "zz"},
        {"__kg__": "bytes", "v": "%%"},
    ],
)
def test_malformed_tagged_values_raise_serialization_errors(data: dict[str, Any]) -> None:
    with pytest.raises(SerializationError) as caught:
        JSONSerializer().decode({"k": [data]})
    assert caught.value.key_path == "['k'][0]"


def test_a_module_getattr_is_never_called_for_checkpoint_data(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "lazy-import"
    (tmp_path / "kg_lazy_module.py").write_text(
        f"def __getattr__(name):\n    open({str(marker)!r}, 'w').close()\n    raise AttributeError(name)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("kg_lazy_module")
    try:
        with pytest.raises(SerializationError, match="not known"):
            JSONSerializer().decode({"__kg__": "enum", "cls": "kg_lazy_module:Lazy", "v": 1})
        assert not marker.exists()
    finally:
        sys.modules.pop("kg_lazy_module", None)


def test_what_cannot_be_checkpointed_or_restored_is_named_in_full() -> None:
    import collections

    serializer = JSONSerializer()
    with pytest.raises(SerializationError) as unknown_type:
        serializer.encode(collections.OrderedDict(a=1), "shared['x']")
    assert str(unknown_type.value).startswith(
        "cannot checkpoint shared['x'] of type collections.OrderedDict: the JSON serializer handles dict, "
    )
    with pytest.raises(SerializationError) as malformed:
        serializer.decode({"k": {"__kg__": "datetime", "v": "garbage"}})
    assert str(malformed.value).startswith(
        "malformed 'datetime' value (ValueError: Invalid isoformat string: 'garbage')"
    )
    assert malformed.value.key_path == "['k']"
    encoded = json.loads(serializer.encode(Kept(1), "shared['x']"))
    encoded["v"]["gone"] = 2
    with pytest.raises(SerializationError) as changed:
        serializer.decode({"kept": encoded})
    assert changed.value.key_path == "['kept']"
    assert str(changed.value) == (
        f"dataclass '{__name__}:Kept' has no field(s) ['gone'] any more; the class changed since the run "
        "was checkpointed"
    )
