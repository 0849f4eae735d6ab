"""Shared helpers of the dashboard: redaction of secrets, JSON-safe previews of state, state diffs.

Everything the API returns from a run's shared state goes through :func:`present`, so secrets are
hidden and huge values are cut in exactly one place, for the pages and for API clients alike.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: Keys whose values are hidden (``"***"``) wherever they appear in a state, at any depth.
DEFAULT_SECRET_PATTERN = (
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|authori[sz]ation|credential|private[_-]?key|cookie"
)
REDACTED = "***"

#: A value whose JSON text is longer than this many characters is shown truncated by default.
DEFAULT_MAX_VALUE_CHARS = 2000


class Redactor:
    """Hides the values stored under secret-looking keys (``password``, ``api_key``, ``token``...).

    ``pattern`` is a regular expression searched (case-insensitively) in each key; None disables
    redaction (``ui.redact: false``).
    """

    def __init__(self, pattern: str | None = DEFAULT_SECRET_PATTERN) -> None:
        self._pattern = re.compile(pattern, re.IGNORECASE) if pattern else None

    def is_secret(self, key: Any) -> bool:
        return self._pattern is not None and isinstance(key, str) and bool(self._pattern.search(key))

    def __call__(self, value: Any, key: Any = None) -> Any:
        """``value`` with every secret-looking key's value replaced by ``"***"``, recursively."""
        if self._pattern is None:
            return value
        if key is not None and self.is_secret(key) and value is not None:
            return REDACTED
        if isinstance(value, Mapping):
            return {name: self(item, name) for name, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(item) for item in value]
        return value


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: tuples become lists, non-finite floats and unknown objects
    their ``repr``, so an answer never fails to encode."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    return repr(value)


def json_size(value: Any) -> int:
    """Length of ``value``'s JSON text."""
    return len(json.dumps(value, ensure_ascii=False, default=repr))


def truncated(value: Any, max_chars: int) -> Any:
    """``value`` itself when its JSON is short, else a marker ``{"$truncated": true, "size", "preview"}``."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    if len(text) <= max_chars:
        return value
    return {"$truncated": True, "size": len(text), "preview": text[:max_chars]}


def present(
    state: Mapping[str, Any], redact: Redactor, *, max_chars: int | None = DEFAULT_MAX_VALUE_CHARS
) -> dict[str, Any]:
    """A run's state as the API shows it: JSON types, secrets hidden, each big top-level value cut."""
    shown = {}
    for key, value in state.items():
        item = jsonable(redact(value, key))
        shown[str(key)] = truncated(item, max_chars) if max_chars is not None else item
    return shown


def diff_states(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys added, removed and changed between two states, with their values.

    ``{"added": {key: new}, "removed": {key: old}, "changed": {key: {"from": old, "to": new}}}``;
    values are compared as JSON, so ``(1, 2)`` and ``[1, 2]`` count as equal.
    """
    added = {key: after[key] for key in after if key not in before}
    removed = {key: before[key] for key in before if key not in after}
    changed = {
        key: {"from": before[key], "to": after[key]}
        for key in after
        if key in before and jsonable(before[key]) != jsonable(after[key])
    }
    return {"added": added, "removed": removed, "changed": changed}


def present_diff(diff: Mapping[str, Any], redact: Redactor, max_chars: int | None) -> dict[str, Any]:
    """:func:`diff_states`'s answer with secrets hidden and big values cut."""

    def show(key: str, value: Any) -> Any:
        item = jsonable(redact(value, key))
        return truncated(item, max_chars) if max_chars is not None else item

    return {
        "added": {key: show(key, value) for key, value in diff["added"].items()},
        "removed": {key: show(key, value) for key, value in diff["removed"].items()},
        "changed": {
            key: {"from": show(key, change["from"]), "to": show(key, change["to"])}
            for key, change in diff["changed"].items()
        },
    }


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: addresses other machines cannot reach."""
    if not host:
        return False
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(items))


__all__ = [
    "DEFAULT_MAX_VALUE_CHARS",
    "DEFAULT_SECRET_PATTERN",
    "REDACTED",
    "Redactor",
    "diff_states",
    "is_loopback",
    "json_size",
    "jsonable",
    "present",
    "present_diff",
    "truncated",
    "unique",
]
