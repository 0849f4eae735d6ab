"""The checkpoint record format, and :class:`RunState`: what a run looked like after a record.

Each record is one JSON object, optionally zlib-compressed, framed as ``kind byte + CRC-32 +
payload`` so a truncated or altered record is detected (``CheckpointCorruptError``) instead of
resuming from garbage. Every record carries the schema version ``v``, the completed-node count
``i``, the time ``t`` and ``ls``, the seq of the newest snapshot at or before it (so the state at
any record is found without scanning).

Kinds: ``start`` and ``resume`` (snapshots), ``step`` (a node completed: ``u`` the top-level
keys set to a new value, ``ap`` the items appended to lists ``{key: [old length, [items]]}``,
``d`` the deleted keys, ``x`` the next position, ``a`` the action), ``item`` (one batch item
finished, with its result), ``end`` (the run ended: ``st`` status, ``e`` error, ``tb``
traceback), and the event records a dashboard reads: ``ns`` (a node started), ``rt`` (a retry),
``ne`` (a node failed). Events carry the core's event number ``q``.

A record marked ``"f":1`` is a snapshot: it carries params, position, unfinished batch items and
the state, as inline values ``s`` and references ``r``: ``{key: [P]}`` (the value as resolved in
snapshot ``P``) or ``{key: [P, [items]]}`` (that value plus appended items). So a snapshot costs
what changed since the previous one; it also lists ``ks``, the snapshots kept (the history
window plus the older ones a reference still needs), so a resumed writer keeps pruning right.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from kaygraph.core.exceptions import CheckpointCorruptError

#: Version of the record format below; records with a higher version are refused.
SCHEMA_VERSION = 2

#: JSON text of a string (not ASCII-escaped).
json_string: Callable[[str], str] = (
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring
)


def _compact_encoder() -> Callable[[Any], str]:
    """Compact, non-ASCII-escaping JSON text of plain values, as fast as the C encoder allows.

    ``json.dumps`` rebuilds its encoder on every call; checkpoints encode a few small values per
    step, so that setup would dominate. The C encoder is built once here instead.
    """
    from json import encoder as json_encoder

    make = getattr(json_encoder, "c_make_encoder", None)
    basestring = json_string
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def unsupported(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    iterencode = make(None, unsupported, basestring, None, ":", ",", False, False, True)
    join = "".join

    def to_json(value: Any) -> str:
        if type(value) is str:
            return str(basestring(value))
        return join(iterencode(value, 0))

    return to_json


#: Compact JSON text of plain values (str, int, float, bool, None, list, dict with str keys).
to_json = _compact_encoder()


def action_json(action: Any) -> str:
    """JSON text of an action: routing actions are strings or None; anything else is kept as its repr."""
    if type(action) is str:
        return str(json_string(action))
    if action is None:
        return "null"
    try:
        return str(to_json(action))
    except (TypeError, ValueError):
        return str(json_string(repr(action)))


_PLAIN = b"J"
_ZLIB = b"Z"
_COMPRESS_ABOVE = 2048
_HEADER = 5


# -- record framing ------------------------------------------------------------------------------


def frame(payload: str) -> bytes:
    """A record's JSON text as stored bytes: compressed when large, with a CRC-32 to detect damage."""
    # surrogatepass: a str with a lone surrogate (from a lossy decode) is a valid Python value and
    # round-trips exactly; unframe decodes the same way.
    data = payload.encode("utf-8", "surrogatepass")
    kind = _PLAIN
    if len(data) > _COMPRESS_ABOVE:
        packed = zlib.compress(data, 1)
        if len(packed) < len(data):
            data, kind = packed, _ZLIB
    return kind + zlib.crc32(data).to_bytes(4, "big") + data


def unframe(blob: bytes, run_id: str, seq: int) -> dict[str, Any]:
    """The parsed record; ``CheckpointCorruptError`` naming the run and record when it is damaged."""
    try:
        blob = bytes(blob)
        kind, body = blob[:1], blob[_HEADER:]
        if kind not in (_PLAIN, _ZLIB) or len(blob) < _HEADER:
            raise ValueError(f"unknown record kind {kind!r}")
        if zlib.crc32(body) != int.from_bytes(blob[1:_HEADER], "big"):
            raise ValueError("checksum mismatch (truncated or altered)")
        if kind == _ZLIB:
            body = zlib.decompress(body)
        record: dict[str, Any] = json.loads(body.decode("utf-8", "surrogatepass"))
        version = record["v"]
        if type(version) is not int:
            raise ValueError(f"schema version {version!r} is not an integer")
    except Exception as exc:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} is corrupt ({exc}); the run cannot be "
            f"resumed from it. Delete the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        ) from exc
    if version > SCHEMA_VERSION:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} has schema version {version}, newer than this "
            f"kaygraph understands ({SCHEMA_VERSION}); upgrade kaygraph to resume it.",
            run_id=run_id,
        )
    return record


def parse_record(blob: bytes, run_id: str, seq: int) -> dict[str, Any]:
    """:func:`unframe`, then a check that the record has a kind (``CheckpointCorruptError``
    calling it malformed otherwise)."""
    record = unframe(blob, run_id, seq)
    if type(record.get("k")) is not str:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} is malformed (it has no kind); the run cannot "
            f"be resumed from it. Delete the run (kaygraph runs delete {run_id}) and start it again.",
            run_id=run_id,
        )
    return record


def join_encoded(encoded: Mapping[Any, str]) -> str:
    """A JSON object from already-encoded values (no second encoding pass)."""
    return "{" + ",".join(f"{json_string(str(key))}:{text}" for key, text in encoded.items()) + "}"


def record_json(kind: str, fields: Mapping[str, Any], raw: Mapping[str, str] | None = None) -> str:
    """A record's JSON text: ``fields`` are plain values, ``raw`` already-encoded JSON texts.

    Snapshots carry ``"f":1`` among their first bytes, so the newest one is found without parsing.
    """
    head: dict[str, Any] = {"v": SCHEMA_VERSION, "k": kind}
    if raw is not None and "s" in raw:
        head["f"] = 1
    head.update(fields)
    text = to_json(head)
    if raw:
        text = text[:-1] + "".join(f',"{key}":{value}' for key, value in raw.items()) + "}"
    return text


def is_snapshot(blob: bytes) -> bool:
    """Whether a stored record is a snapshot, from its first bytes."""
    return b'"f":1' in _peek(blob)


def _peek(blob: bytes) -> bytes:
    """The first bytes of a record's JSON, enough to see whether it is a snapshot without parsing it."""
    if blob[:1] == _ZLIB:
        try:
            return zlib.decompressobj().decompress(bytes(blob[_HEADER:]), 40)
        except zlib.error:
            return b""
    return bytes(blob[_HEADER : _HEADER + 40])


def is_snapshot_record(record: Mapping[str, Any]) -> bool:
    """Whether a parsed record is a snapshot."""
    return record.get("f") == 1


def snapshot_of(seq: int, record: Mapping[str, Any]) -> int:
    """The seq of the snapshot the state after record ``seq`` is folded from."""
    return seq if is_snapshot_record(record) else int(record["ls"])


def resolve_state(record: Mapping[str, Any], fetch: Callable[[int], Mapping[str, Any]]) -> dict[str, Any]:
    """The state a snapshot stands for (parsed JSON values), following its references.

    ``fetch(seq)`` returns the parsed snapshot record ``seq``. Lists are fresh copies, so folding
    appends into them never changes a record another reader holds.
    """
    state = dict(record.get("s") or {})
    for key, ref in (record.get("r") or {}).items():
        chunks = []
        while True:
            if len(ref) == 2:
                chunks.append(ref[1])
            holder = fetch(int(ref[0]))
            inline = holder.get("s") or {}
            if key in inline:
                base = inline[key]
                break
            ref = holder["r"][key]
        if chunks:
            value = list(base)
            for chunk in reversed(chunks):
                value.extend(chunk)
            state[key] = value
        else:
            state[key] = list(base) if type(base) is list else base
    return state


class RunState:
    """The fold of a run's records (parsed JSON values): state, params, position, batch items.

    Readers (history, resume, forks) advance it record by record; what resuming means is written
    once here.
    """

    __slots__ = (
        "action",
        "error",
        "items",
        "last_action",
        "params",
        "position",
        "state",
        "status",
        "steps",
        "traceback",
    )

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.params: Any = None
        #: Next node, from the top graph down (see ``kaygraph.core.events.ResumePoint``).
        self.position: tuple[Any, ...] = ()
        self.last_action: Any = None
        #: Finished batch items by the path of their node: ``{path: {index: result}}``.
        self.items: dict[tuple[Any, ...], dict[int, Any]] = {}
        self.steps = 0
        self.status = "running"
        self.action: Any = None
        self.error: str | None = None
        self.traceback: str | None = None

    def apply(self, record: Mapping[str, Any], state: dict[str, Any] | None = None) -> None:
        """Advance by one parsed record; for a snapshot, ``state`` is its resolved state (None:
        keep the folded state, which equals it when reading forward)."""
        kind = record["k"]
        if is_snapshot_record(record):
            if state is not None:
                self.state = state
            elif kind == "step":  # reading forward: a step snapshot also carries its own delta
                self.change_state(record)
            self.params = record.get("m")
            self.position = tuple(record["x"])
            self.last_action = record.get("la")
            self.items = {tuple(path): {int(i): r for i, r in done} for path, done in record["I"]}
            self.steps = record["i"]
        elif kind == "item":
            self.items.setdefault(tuple(record["p"]), {})[record["j"]] = record.get("r")
        elif kind == "step":
            self.change_state(record)
            self._forget_items(tuple(record["p"]))
            position = record.get("x")
            if position is not None:
                self.position = tuple(position)
                self.last_action = record.get("a") if position[-1] is None else None
            if record.get("m") is not None:
                self.params = record["m"]
            self.steps = record["i"]
        elif kind == "end":
            self.change_state(record)
            self.status = record["st"]
            self.action = record.get("a")
            self.error = record.get("e")
            self.traceback = record.get("tb")

    def change_state(self, record: Mapping[str, Any]) -> None:
        """Apply a record's state changes: keys set (``u``), lists appended (``ap``), keys deleted."""
        changed = record.get("u")
        if changed:
            self.state.update(changed)
        for key, (count, items) in (record.get("ap") or {}).items():
            value = self.state.get(key)
            if type(value) is not list or len(value) != count:
                raise ValueError(f"an append to {key!r} expects a list of {count} items")
            value.extend(items)
        for key in record.get("d") or ():
            self.state.pop(key, None)

    def _forget_items(self, path: tuple[Any, ...]) -> None:
        """A node finished: items recorded for it (and for nodes inside it) are no longer pending."""
        if not self.items:
            return
        depth = len(path)
        for key in [key for key in self.items if key[:depth] == path]:
            del self.items[key]


def apply_record(
    run_state: RunState, record: Mapping[str, Any], run_id: str, seq: int, state: dict[str, Any] | None = None
) -> None:
    """``run_state.apply(record, state)``; ``CheckpointCorruptError`` naming the run and record if
    the record does not have the structure this version writes."""
    try:
        run_state.apply(record, state)
    except Exception as exc:
        raise CheckpointCorruptError(
            f"checkpoint record {seq} of run {run_id!r} is malformed ({type(exc).__name__}: {exc}); "
            f"the run cannot be resumed from it. Delete the run (kaygraph runs delete {run_id}) and "
            "start it again.",
            run_id=run_id,
        ) from exc


__all__ = [
    "SCHEMA_VERSION",
    "RunState",
    "action_json",
    "apply_record",
    "frame",
    "is_snapshot",
    "is_snapshot_record",
    "join_encoded",
    "json_string",
    "parse_record",
    "record_json",
    "resolve_state",
    "snapshot_of",
    "to_json",
    "unframe",
]
