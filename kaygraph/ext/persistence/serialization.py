"""Serializers: how values of the shared store become checkpoint text and come back.

The default, :class:`JSONSerializer`, is safe to load from any database: it writes plain JSON and
marks the types JSON lacks with a small tag object (``{"__kg__": "tuple", "v": [...]}``). It
round-trips dict, list, str, int, float, bool, None, tuple, set, frozenset, bytes, datetime, date,
time, timedelta, Decimal, UUID, Enum members, dataclasses and pydantic models. Anything else fails
with a :class:`SerializationError` that names the key path (``shared['docs'][3]['embedding']``).
Loading never imports a module named in the data: classes are found among those registered with
:func:`register_type` or in modules the process has already imported.

:class:`PickleSerializer` accepts any picklable value but is opt-in only: loading a pickle runs
code, so use it only with a store nobody else can write to.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import sys
import threading
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

from kaygraph.core.exceptions import CheckpointCorruptError, PersistenceError, SerializationError

from .abc import RunInfo, Serializer
from .records import json_string, to_json
from .tracking import TrackedList

_TAG = "__kg__"
_TAG_TEXT = '"__kg__"'
_SCALARS = (str, int, float, bool, type(None))
_INFINITIES = (float("inf"), float("-inf"))


def _class_path(cls: type, key_path: str) -> str:
    """``module:qualname`` of a class whose instances are checkpointed; refuses classes that could
    never be found again when the checkpoint is read (defined inside a function)."""
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise SerializationError(
            f"cannot checkpoint {key_path} of type {cls.__module__}.{qualname}: the class is defined "
            "inside a function, so a resumed run could never find it again. Define it at module "
            "level (or convert the value to a dict).",
            key_path=key_path,
        )
    return f"{cls.__module__}:{qualname}"


#: Classes registered with :func:`register_type`, by ``module:qualname``.
_registered: dict[str, type] = {}
_registry_lock = threading.Lock()


def register_type(cls: type) -> type:
    """Allow instances of ``cls`` (a dataclass, Enum or pydantic model) to be restored from checkpoints.

    Checkpoint data never makes the JSON serializer import a module: a class is found in this
    registry, or in a module that is already imported (``sys.modules``). Register a class (or
    import its module before resuming) when the run is read by a process that would not have
    imported it otherwise. Usable as a class decorator; returns ``cls``.
    """
    if not isinstance(cls, type) or not _restorable_kind(cls):
        raise SerializationError(
            f"register_type() takes a dataclass, Enum or pydantic model class, got {cls!r}"
        )
    path = _class_path(cls, f"register_type({cls.__qualname__})")
    with _registry_lock:
        _registered[path] = cls
    return cls


def _restorable_kind(cls: type) -> bool:
    """Whether ``cls`` is a kind of class the JSON serializer restores (dataclass, Enum, pydantic)."""
    if dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum):
        return True
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and issubclass(cls, pydantic.BaseModel)


def _resolve_class(path: Any, key_path: str) -> type:
    """The class named ``module:qualname`` in checkpoint data, without importing anything.

    Looked up in the :func:`register_type` registry, then in modules already imported; the object
    found must be a class whose own ``module:qualname`` is ``path``.
    """
    if type(path) is not str or ":" not in path:
        raise _Undecodable(f"malformed class name {path!r}", key_path=key_path)
    cls = _registered.get(path)
    if cls is not None:
        return cls
    module_name, _, qualname = path.partition(":")
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split(".") if obj is not None else ():
        # The namespace itself, never getattr: a module __getattr__ (lazy exports) could import.
        namespace = getattr(obj, "__dict__", None)
        obj = namespace.get(part) if isinstance(namespace, Mapping) else None
        if obj is None:
            break
    if not isinstance(obj, type) or _class_path_of(obj) != path:
        raise SerializationError(
            f"class {path!r} is not known to this process, so the value cannot be restored. The "
            f"JSON serializer never imports modules named in checkpoint data: import "
            f"{module_name!r} before resuming or reading the run, or register the class with "
            "kaygraph.ext.persistence.register_type(cls).",
            key_path=key_path,
        )
    return obj


def _class_path_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class _Undecodable(SerializationError):
    """Checkpoint data that is not what the JSON serializer wrote (bad structure, unknown tag)."""


def _key_repr(key_path: str, key: Any) -> str:
    return f"{key_path}[{key!r}]"


class JSONSerializer(Serializer):
    """Safe default: JSON with type tags; loading never imports a module nor runs unknown code.

    Dataclasses, Enums and pydantic models are restored by finding their class by
    ``module:qualname`` among the classes registered with :func:`register_type` or in modules that
    are already imported, and checking that it really is a dataclass / Enum / pydantic model.
    """

    name = "json"
    itemwise = True

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
        """The value encoded by :meth:`encode`, from its parsed JSON form.

        Raises ``SerializationError`` whose ``key_path`` is relative to the value (``['docs'][3]``)
        for data this serializer did not write or a class this process does not know.
        """
        if type(data) in (list, dict):
            # Plain JSON (no tag anywhere) decodes to a copy of itself: made at C speed.
            text = to_json(data)
            if _TAG_TEXT not in text:
                return json.loads(text)
        return self._untagged(data, "")

    # -- encoding ----------------------------------------------------------------------------

    def _tagged(self, value: Any, key_path: str) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            if kind is float and (value != value or value in _INFINITIES):
                return {_TAG: "float", "v": repr(value)}
            return value
        if kind is list or kind is TrackedList:
            return [
                self._tagged(item, f"{key_path}[{index}]") for index, item in enumerate(list.__iter__(value))
            ]
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
            cls = _class_path(type(value), key_path)
            return {_TAG: "enum", "cls": cls, "v": self._tagged(value.value, key_path)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            cls = _class_path(type(value), key_path)
            fields = {
                field.name: self._tagged(getattr(value, field.name), f"{key_path}.{field.name}")
                for field in dataclasses.fields(value)
            }
            return {_TAG: "dataclass", "cls": cls, "v": fields}
        pydantic = sys.modules.get("pydantic")
        if pydantic is not None and isinstance(value, pydantic.BaseModel):
            cls = _class_path(type(value), key_path)
            data = value.model_dump(mode="python")
            return {_TAG: "pydantic", "cls": cls, "v": self._tagged(data, key_path)}
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

    def _untagged(self, data: Any, key_path: str) -> Any:
        kind = type(data)
        if kind is list:
            return [self._untagged(item, f"{key_path}[{index}]") for index, item in enumerate(data)]
        if kind is dict:
            tag = data.get(_TAG)
            if tag is None:
                return {key: self._untagged(item, _key_repr(key_path, key)) for key, item in data.items()}
            decoder = _DECODERS.get(tag) if type(tag) is str else None
            if decoder is None:
                raise _Undecodable(f"unknown type tag {tag!r}", key_path=key_path)
            try:
                return decoder(self, data, key_path)
            except SerializationError:
                raise
            except Exception as exc:
                raise _Undecodable(
                    f"malformed {tag!r} value ({type(exc).__name__}: {exc})", key_path=key_path
                ) from exc
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


def _encode_datetime(_serializer: JSONSerializer, value: Any, _key_path: str) -> Any:
    """ISO text; a ``ZoneInfo`` zone is kept by name (``"tz"``) and ``fold`` when set, so wall
    time, zone rules and the ambiguous hour all come back."""
    tagged: dict[str, Any] = {_TAG: "datetime", "v": value.isoformat()}
    tzinfo = value.tzinfo
    if type(tzinfo) is zoneinfo.ZoneInfo and tzinfo.key is not None:
        tagged["tz"] = tzinfo.key
    if value.fold:
        tagged["fold"] = 1
    return tagged


def _decode_datetime(_serializer: JSONSerializer, data: dict[str, Any], _key_path: str) -> Any:
    value = _dt.datetime.fromisoformat(data["v"])
    zone = data.get("tz")
    if zone is not None:
        # The ISO text holds the wall time: attach the zone to it, as the original value had it.
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    if data.get("fold"):
        value = value.replace(fold=1)
    return value


_ENCODERS: dict[type, Callable[[JSONSerializer, Any, str], Any]] = {
    tuple: _encode_tuple,
    set: _encode_set,
    frozenset: _encode_set,
    bytes: lambda _s, value, _p: {_TAG: "bytes", "v": base64.b64encode(value).decode("ascii")},
    _dt.datetime: _encode_datetime,
    _dt.date: lambda _s, value, _p: {_TAG: "date", "v": value.isoformat()},
    _dt.time: lambda _s, value, _p: {_TAG: "time", "v": value.isoformat()},
    _dt.timedelta: lambda _s, value, _p: {
        _TAG: "timedelta",
        "v": [value.days, value.seconds, value.microseconds],
    },
    decimal.Decimal: lambda _s, value, _p: {_TAG: "decimal", "v": str(value)},
    uuid.UUID: lambda _s, value, _p: {_TAG: "uuid", "v": str(value)},
}


def _decode_class(data: dict[str, Any], key_path: str, check: Callable[[type], bool], what: str) -> type:
    cls = _resolve_class(data["cls"], key_path)
    if not check(cls):
        raise SerializationError(
            f"class {data['cls']!r} is not a {what}, so the checkpoint cannot have stored it: the data "
            "was altered or the class changed since the run was checkpointed",
            key_path=key_path,
        )
    return cls


def _decode_dataclass(serializer: JSONSerializer, data: dict[str, Any], key_path: str) -> Any:
    cls = _decode_class(data, key_path, dataclasses.is_dataclass, "dataclass")
    values = {name: serializer._untagged(item, f"{key_path}.{name}") for name, item in data["v"].items()}
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise SerializationError(
            f"dataclass {data['cls']!r} has no field(s) {sorted(unknown)} any more; the class changed "
            "since the run was checkpointed",
            key_path=key_path,
        )
    init_args = {name: value for name, value in values.items() if fields[name].init}
    obj = cls(**init_args)
    for name, value in values.items():
        if not fields[name].init:
            object.__setattr__(obj, name, value)
    return obj


def _decode_pydantic(serializer: JSONSerializer, data: dict[str, Any], key_path: str) -> Any:
    pydantic = sys.modules.get("pydantic")
    cls = _decode_class(
        data,
        key_path,
        lambda c: pydantic is not None and issubclass(c, pydantic.BaseModel),
        "pydantic model",
    )
    return cls.model_validate(serializer._untagged(data["v"], key_path))  # type: ignore[attr-defined]


def _decode_enum(serializer: JSONSerializer, data: dict[str, Any], key_path: str) -> Any:
    cls = _decode_class(data, key_path, lambda c: issubclass(c, enum.Enum), "Enum")
    return cls(serializer._untagged(data["v"], key_path))


def _items(serializer: JSONSerializer, data: dict[str, Any], key_path: str) -> list[Any]:
    return [serializer._untagged(item, f"{key_path}[{i}]") for i, item in enumerate(data["v"])]


_DECODERS: dict[str, Callable[[JSONSerializer, dict[str, Any], str], Any]] = {
    "tuple": lambda s, d, p: tuple(_items(s, d, p)),
    "set": lambda s, d, p: set(_items(s, d, p)),
    "frozenset": lambda s, d, p: frozenset(_items(s, d, p)),
    "dict": lambda s, d, p: {
        s._untagged(key, f"{p}.keys()"): s._untagged(item, f"{p}[{key!r}]") for key, item in d["v"]
    },
    "bytes": lambda _s, d, _p: base64.b64decode(d["v"], validate=True),
    "float": lambda _s, d, _p: float(d["v"]),
    "datetime": _decode_datetime,
    "date": lambda _s, d, _p: _dt.date.fromisoformat(d["v"]),
    "time": lambda _s, d, _p: _dt.time.fromisoformat(d["v"]),
    "timedelta": lambda _s, d, _p: _dt.timedelta(*d["v"]),
    "decimal": lambda _s, d, _p: decimal.Decimal(d["v"]),
    "uuid": lambda _s, d, _p: uuid.UUID(d["v"]),
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


# -- decoding checkpoints with errors that name the run --------------------------------------


def check_serializer(info: RunInfo, serializer: Serializer) -> None:
    """Refuse to decode run ``info`` with a serializer other than the one that wrote it.

    Readers decode only with the serializer they configured (JSON by default), never with the
    one named in the store, which anybody with write access to the store could set to pickle.
    """
    if info.serializer == serializer.name:
        return
    if info.serializer == "pickle":
        how = (
            "If you trust this store (loading a pickle runs code), opt in explicitly: "
            "durable(graph, store, serializer='pickle'), steps(store, run_id, serializer='pickle') "
            "or `kaygraph runs show --serializer pickle`."
        )
    else:
        how = f"Read it with serializer={info.serializer!r}."
    raise PersistenceError(
        f"run {info.run_id!r} was recorded with the {info.serializer!r} serializer, but this reader "
        f"uses {serializer.name!r}; its checkpoints are not decoded with a serializer that did not "
        f"write them. {how}",
        run_id=info.run_id,
    )


def decode_value(serializer: Serializer, data: Any, *, run_id: str, seq: int, key_path: str) -> Any:
    """``serializer.decode(data)`` with errors naming the run, the record and the key path.

    A class this process does not know gives ``SerializationError`` (import its module or
    register it); data the serializer cannot have written gives ``CheckpointCorruptError``.
    """
    try:
        return serializer.decode(data)
    except Exception as exc:
        inner = getattr(exc, "key_path", None) or ""
        where = f"{key_path}{inner}"
        if isinstance(exc, SerializationError) and not isinstance(exc, _Undecodable):
            raise SerializationError(
                f"cannot restore {where} of run {run_id!r} (checkpoint record {seq}): {exc}",
                run_id=run_id,
                key_path=where,
            ) from exc
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} cannot be decoded at {where} "
            f"({type(exc).__name__}: {exc}): the stored data is damaged or was not written by the "
            f"{serializer.name!r} serializer. Delete the run (kaygraph runs delete {run_id}) and "
            "start it again.",
            run_id=run_id,
        ) from exc


def decode_state(
    serializer: Serializer, state: Mapping[str, Any], *, run_id: str, seq: int
) -> dict[str, Any]:
    """The shared store from a folded run state (values in parsed JSON form)."""
    return {
        key: decode_value(serializer, value, run_id=run_id, seq=seq, key_path=f"shared[{key!r}]")
        for key, value in state.items()
    }


def decode_params(serializer: Serializer, params: Any, *, run_id: str, seq: int) -> dict[str, Any] | None:
    """The run's params from a folded run state, or None when the run recorded none."""
    if params is None:
        return None
    value = decode_value(serializer, params, run_id=run_id, seq=seq, key_path="params")
    if not isinstance(value, dict):
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} holds params of type {type(value).__name__}, "
            f"not a dict; delete the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        )
    return value


__all__ = [
    "JSONSerializer",
    "PickleSerializer",
    "check_serializer",
    "decode_params",
    "decode_state",
    "decode_value",
    "get_serializer",
    "register_type",
]
