"""Serializers: how values of the shared store become checkpoint text and come back.

The default, :class:`JSONSerializer`, is safe to load from any database: it writes plain JSON and
marks the types JSON lacks with a small tag object (``{"__kg__": "tuple", "v": [...]}``). It
round-trips dict, list, str, int, float, bool, None, tuple, set, frozenset, bytes, datetime, date,
time, timedelta, Decimal, UUID, Enum members, dataclasses and pydantic models. Anything else fails
with a :class:`SerializationError` that names the key path (``shared['docs'][3]['embedding']``).

:class:`PickleSerializer` accepts any picklable value but is opt-in only: loading a pickle runs
code, so use it only with a store nobody else can write to.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import importlib
import json
import sys
import uuid
from collections.abc import Callable
from typing import Any

from kaygraph.core.exceptions import PersistenceError, SerializationError

from .abc import Serializer
from .base import json_string, to_json

_TAG = "__kg__"
_SCALARS = (str, int, float, bool, type(None))
_INFINITIES = (float("inf"), float("-inf"))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_class(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise TypeError(f"{path!r} is not a class")
    return obj


def _key_repr(key_path: str, key: Any) -> str:
    return f"{key_path}[{key!r}]"


class JSONSerializer(Serializer):
    """Safe default: JSON with type tags; never runs code when loading (only imports named classes).

    Dataclasses, Enums and pydantic models are restored by importing their class by
    ``module:qualname`` and checking that it really is a dataclass / Enum / pydantic model.
    """

    name = "json"

    def encode(self, value: Any, key_path: str) -> str:
        """``value`` as JSON text; ``key_path`` (e.g. ``shared['docs']``) is used in errors only."""
        kind = type(value)
        if kind is str:
            return json_string(value)
        if kind is int:
            return int.__repr__(value)
        if kind is bool or value is None:
            return "true" if value is True else "false" if value is False else "null"
        return to_json(self._tagged(value, key_path))

    def decode(self, data: Any) -> Any:
        """The value encoded by :meth:`encode`, from its parsed JSON form."""
        return self._untagged(data)

    # -- encoding ----------------------------------------------------------------------------

    def _tagged(self, value: Any, key_path: str) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            if kind is float and (value != value or value in _INFINITIES):
                return {_TAG: "float", "v": repr(value)}
            return value
        if kind is list:
            return [self._tagged(item, f"{key_path}[{index}]") for index, item in enumerate(value)]
        if kind is dict:
            if all(type(key) is str for key in value) and _TAG not in value:
                return {key: self._tagged(item, _key_repr(key_path, key)) for key, item in value.items()}
            return {
                _TAG: "dict",
                "v": [
                    [self._tagged(key, f"{key_path}.keys()"), self._tagged(item, _key_repr(key_path, key))]
                    for key, item in value.items()
                ],
            }
        encoder = _ENCODERS.get(kind)
        if encoder is not None:
            return encoder(self, value, key_path)
        return self._tagged_other(value, key_path)

    def _tagged_other(self, value: Any, key_path: str) -> Any:
        if isinstance(value, enum.Enum):
            return {_TAG: "enum", "cls": _class_path(type(value)), "v": self._tagged(value.value, key_path)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {
                field.name: self._tagged(getattr(value, field.name), f"{key_path}.{field.name}")
                for field in dataclasses.fields(value)
            }
            return {_TAG: "dataclass", "cls": _class_path(type(value)), "v": fields}
        pydantic = sys.modules.get("pydantic")
        if pydantic is not None and isinstance(value, pydantic.BaseModel):
            data = value.model_dump(mode="python")
            return {_TAG: "pydantic", "cls": _class_path(type(value)), "v": self._tagged(data, key_path)}
        # Subclasses of the built-in containers (OrderedDict, defaultdict, namedtuple, ...) would lose
        # their type silently: refuse them like any other unknown type.
        raise SerializationError(
            f"cannot checkpoint {key_path} of type {type(value).__module__}.{type(value).__qualname__}: "
            "the JSON serializer handles dict, list, str, int, float, bool, None, tuple, set, bytes, "
            "datetime, Decimal, UUID, Enum, dataclasses and pydantic models. Convert the value "
            "(e.g. array.tolist()) or opt in to pickle with serializer='pickle' (only for a store "
            "you trust: loading a pickle runs code).",
            key_path=key_path,
        )

    # -- decoding ----------------------------------------------------------------------------

    def _untagged(self, data: Any) -> Any:
        kind = type(data)
        if kind is list:
            return [self._untagged(item) for item in data]
        if kind is dict:
            tag = data.get(_TAG)
            if tag is None:
                return {key: self._untagged(item) for key, item in data.items()}
            decoder = _DECODERS.get(tag)
            if decoder is None:
                raise ValueError(f"unknown type tag {tag!r}")
            return decoder(self, data)
        return data


def _encode_tuple(serializer: JSONSerializer, value: Any, key_path: str) -> Any:
    return {
        _TAG: "tuple",
        "v": [serializer._tagged(item, f"{key_path}[{i}]") for i, item in enumerate(value)],
    }


def _encode_set(serializer: JSONSerializer, value: Any, key_path: str) -> Any:
    items = [serializer._tagged(item, f"{key_path}.<item>") for item in value]
    items.sort(key=lambda item: json.dumps(item, sort_keys=True))  # stable text, so deltas stay small
    return {_TAG: "set" if type(value) is set else "frozenset", "v": items}


_ENCODERS: dict[type, Callable[[JSONSerializer, Any, str], Any]] = {
    tuple: _encode_tuple,
    set: _encode_set,
    frozenset: _encode_set,
    bytes: lambda _s, value, _p: {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")},
    _dt.datetime: lambda _s, value, _p: {_TAG: "datetime", "v": value.isoformat()},
    _dt.date: lambda _s, value, _p: {_TAG: "date", "v": value.isoformat()},
    _dt.time: lambda _s, value, _p: {_TAG: "time", "v": value.isoformat()},
    _dt.timedelta: lambda _s, value, _p: {
        _TAG: "timedelta",
        "v": [value.days, value.seconds, value.microseconds],
    },
    decimal.Decimal: lambda _s, value, _p: {_TAG: "decimal", "v": str(value)},
    uuid.UUID: lambda _s, value, _p: {_TAG: "uuid", "v": str(value)},
}


def _decode_class(data: dict[str, Any], check: Callable[[type], bool], what: str) -> type:
    cls = _import_class(data["cls"])
    if not check(cls):
        raise ValueError(f"{data['cls']!r} is not a {what}")
    return cls


def _decode_dataclass(serializer: JSONSerializer, data: dict[str, Any]) -> Any:
    cls = _decode_class(data, dataclasses.is_dataclass, "dataclass")
    values = {name: serializer._untagged(item) for name, item in data["v"].items()}
    fields = {field.name: field for field in dataclasses.fields(cls)}
    init_args = {name: value for name, value in values.items() if fields[name].init}
    obj = cls(**init_args)
    for name, value in values.items():
        if not fields[name].init:
            object.__setattr__(obj, name, value)
    return obj


def _decode_pydantic(serializer: JSONSerializer, data: dict[str, Any]) -> Any:
    pydantic = importlib.import_module("pydantic")
    cls = _decode_class(data, lambda c: issubclass(c, pydantic.BaseModel), "pydantic model")
    return cls.model_validate(serializer._untagged(data["v"]))  # type: ignore[attr-defined]


def _decode_enum(serializer: JSONSerializer, data: dict[str, Any]) -> Any:
    cls = _decode_class(data, lambda c: issubclass(c, enum.Enum), "Enum")
    return cls(serializer._untagged(data["v"]))


_DECODERS: dict[str, Callable[[JSONSerializer, dict[str, Any]], Any]] = {
    "tuple": lambda s, d: tuple(s._untagged(item) for item in d["v"]),
    "set": lambda s, d: {s._untagged(item) for item in d["v"]},
    "frozenset": lambda s, d: frozenset(s._untagged(item) for item in d["v"]),
    "dict": lambda s, d: {s._untagged(key): s._untagged(item) for key, item in d["v"]},
    "bytes": lambda _s, d: base64.b64decode(d["v"]),
    "float": lambda _s, d: float(d["v"]),
    "datetime": lambda _s, d: _dt.datetime.fromisoformat(d["v"]),
    "date": lambda _s, d: _dt.date.fromisoformat(d["v"]),
    "time": lambda _s, d: _dt.time.fromisoformat(d["v"]),
    "timedelta": lambda _s, d: _dt.timedelta(*d["v"]),
    "decimal": lambda _s, d: decimal.Decimal(d["v"]),
    "uuid": lambda _s, d: uuid.UUID(d["v"]),
    "enum": _decode_enum,
    "dataclass": _decode_dataclass,
    "pydantic": _decode_pydantic,
}


class PickleSerializer(Serializer):
    """Opt-in: any picklable value, stored as base64 text. Loading it runs code: trusted stores only."""

    name = "pickle"

    def encode(self, value: Any, key_path: str) -> str:
        import pickle

        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(
                f"cannot pickle {key_path} of type {type(value).__qualname__}: {exc}", key_path=key_path
            ) from exc
        return to_json(base64.b64encode(data).decode("ascii"))

    def decode(self, data: Any) -> Any:
        import pickle

        return pickle.loads(base64.b64decode(data))


_SERIALIZERS: dict[str, type[Serializer]] = {"json": JSONSerializer, "pickle": PickleSerializer}


def get_serializer(serializer: str | Serializer | None) -> Serializer:
    """A serializer instance from a name (``"json"``, ``"pickle"``), an instance, or None (JSON)."""
    if serializer is None:
        return JSONSerializer()
    if isinstance(serializer, Serializer):
        return serializer
    try:
        return _SERIALIZERS[serializer]()
    except (KeyError, TypeError):
        raise PersistenceError(
            f"unknown serializer {serializer!r}: use 'json' (safe default), 'pickle' (trusted stores "
            "only) or an instance of kaygraph.ext.persistence.abc.Serializer"
        ) from None


__all__ = ["JSONSerializer", "PickleSerializer", "get_serializer"]
