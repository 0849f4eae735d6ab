"""Node configuration: the settings a graph hands to its nodes (model name, prompts, limits).

``kaygraph.Config`` (this class) is per graph and per node, passed as ``config=``. It is not the
framework's own settings, which live in the module :mod:`kaygraph.config` (``get_config()``,
``configure()``, ``kaygraph.config.Config(config_file=...)``).

    >>> from kaygraph import Config
    >>> config = Config(model="small", temperature=0.2)
    >>> config.get("model"), config.get("missing", "fallback")
    ('small', 'fallback')
    >>> config.merge({"temperature": 0.9}).to_dict()
    {'model': 'small', 'temperature': 0.9}
"""

from __future__ import annotations

from .exceptions import GraphDefinitionError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any


class Config:
    """Named settings for nodes: ``Config(model="gpt-4o-mini", temperature=0.7)``.

    A graph given ``config=`` passes it to each of its nodes that has none (an empty Config
    counts as none), so ``self.config.get("model")`` works inside ``prep``/``exec``/``post``.
    ``merge`` returns a new Config; ``set`` and ``update`` change this one in place (nodes that
    share it see the change, as in KayGraph 0.3).
    """

    __slots__ = ("_values",)

    def __init__(self, **settings: Any) -> None:
        self._values: dict[str, Any] = dict(settings)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is not set."""
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Set one value."""
        self._values[key] = value

    def update(self, settings: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set several values: ``update(model="x")`` or ``update({"model": "x"})``."""
        if settings is not None:
            self._values.update(_as_dict(settings, "Config.update"))
        self._values.update(more)

    def merge(self, other: Config | Mapping[str, Any] | None) -> Config:
        """A new Config with this one's values overridden by ``other``'s (a Config or a dict)."""
        merged = Config()
        merged._values = {**self._values, **({} if other is None else _as_dict(other, "Config.merge"))}
        return merged

    def to_dict(self) -> dict[str, Any]:
        """A copy of the values as a plain dict."""
        return dict(self._values)

    def __bool__(self) -> bool:
        """False when no value is set: a graph then hands its own config to the node."""
        return bool(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Config):
            return self._values == other._values
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


def _as_dict(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, Config):
        return value._values
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return dict(value)
    raise GraphDefinitionError(
        f"{where}() takes a kaygraph.Config or a dict of settings, got {value!r} ({type(value).__name__})"
    )


def resolve_config(config: Any, owner: str) -> Config:
    """What a node stores for ``config=``: a Config (a new empty one for None); dicts are accepted."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        converted = Config()
        converted._values = dict(config)
        return converted
    hint = ""
    if type(config).__module__ == "kaygraph.config":
        hint = (
            " That is KayGraph's framework settings (kaygraph.config.Config); node settings are "
            "kaygraph.Config(**settings)."
        )
    raise GraphDefinitionError(
        f"{owner}: config must be a kaygraph.Config (or a dict of settings), got "
        f"{type(config).__name__}.{hint}"
    )
