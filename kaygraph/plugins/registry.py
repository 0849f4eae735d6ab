"""Plugin discovery and loading.

A plugin is found in one of two ways:

- an entry point in the group ``kaygraph.plugins`` (the packaging guide's recommended way)::

      [project.entry-points."kaygraph.plugins"]
      hello = "my_package.kaygraph_plugin"

  naming a module (or object) with ``plugin_info()``, a ``plugin_info`` function, or a
  :class:`PluginInfo`;
- a top-level package (a directory with ``__init__.py``) named ``kaygraph_<something>`` that
  defines ``plugin_info()``. Single-file modules are not scanned: a stray ``kaygraph_test.py`` in
  the working directory is far more likely a script than a plugin, and importing it would run it.

``plugin_info()`` returns a :class:`PluginInfo` or a dict of its fields. The module may define
``initialize()``, called once when the plugin is loaded. Discovery happens on first use, never at
``import kaygraph``. ``KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD=1`` turns it off and ``KAYGRAPH_PLUGINS=a,b``
limits it to the named plugins (set but naming none, it allows none, with a warning); either way
:func:`load_plugin` can still load a named plugin on purpose. A plugin that fails to import or
describe itself (even by calling ``sys.exit()``) is logged, listed in :attr:`PluginRegistry.failed`
and skipped; loading it by any spelling of its name then reports that failure without importing
it again.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kaygraph.core.exceptions import PluginError, UnknownPluginError

if TYPE_CHECKING:
    import logging

ENTRY_POINT_GROUP = "kaygraph.plugins"
PACKAGE_PREFIX = "kaygraph_"
_TRUE = frozenset({"1", "true", "yes", "on"})
#: What a plugin's import or initialize() may raise that must not end discovery: SystemExit too
#: (a package calling sys.exit() at import would otherwise kill `kaygraph info`).
_PLUGIN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("kaygraph.plugins")


@dataclass
class PluginInfo:
    """What a plugin says about itself; ``requires`` names other plugins to load first."""

    name: str
    version: str
    description: str = ""
    author: str | None = None
    requires: list[str] = field(default_factory=list)
    provides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: Any, *, plugin: str) -> PluginInfo:
        """Accept what ``plugin_info()`` returned: a PluginInfo or a dict (unknown keys are ignored,
        so plugins written for a newer KayGraph still load)."""
        if isinstance(value, PluginInfo):
            info = value
        elif isinstance(value, Mapping):
            known = {key: value[key] for key in cls.__dataclass_fields__ if key in value}
            missing = [key for key in ("name", "version") if key not in known]
            if missing:
                raise PluginError(
                    f"Plugin {plugin!r}: plugin_info() lacks {', '.join(map(repr, missing))}; it must "
                    "return a PluginInfo or a dict with at least 'name' and 'version'",
                    plugin=plugin,
                )
            info = cls(**known)
        else:
            raise PluginError(
                f"Plugin {plugin!r}: plugin_info() returned {value!r} ({type(value).__name__}); it must "
                "return a PluginInfo or a dict with at least 'name' and 'version'",
                plugin=plugin,
            )
        if not isinstance(info.name, str) or not isinstance(info.version, str):
            raise PluginError(f"Plugin {plugin!r}: 'name' and 'version' must be strings", plugin=plugin)
        if isinstance(info.requires, str) or not isinstance(info.requires, Sequence):
            raise PluginError(f"Plugin {plugin!r}: 'requires' must be a list of plugin names", plugin=plugin)
        return info


@dataclass
class _Plugin:
    key: str  # the name the registry knows it by
    info: PluginInfo
    origin: str  # where it was found, for messages and `kaygraph info`
    provider: Any  # the module (or object) with plugin_info() and initialize()
    loaded: bool = False


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUE


class PluginRegistry:
    """Finds plugins on first use and loads each at most once.

    ``env`` and ``path`` default to ``os.environ`` and ``sys.path`` at discovery time; tests pass
    their own.
    """

    def __init__(
        self,
        *,
        group: str = ENTRY_POINT_GROUP,
        prefix: str = PACKAGE_PREFIX,
        env: Mapping[str, str] | None = None,
        path: Sequence[str] | None = None,
    ) -> None:
        self.group = group
        self.prefix = prefix
        self._env = env
        self._path = path
        self._records: dict[str, _Plugin] = {}
        self._failed: dict[str, str] = {}
        self._discovered = False
        self._autoload = True
        self._allow: frozenset[str] | None = None
        self._lock = threading.RLock()

    # -- discovery ----------------------------------------------------------------------------

    def discover(self, *, refresh: bool = False) -> list[PluginInfo]:
        """Find plugins (once; ``refresh=True`` looks again) and return what was found."""
        with self._lock:
            if self._discovered and not refresh:
                return self.list_plugins()
            env = os.environ if self._env is None else self._env
            self._autoload = not _truthy(env.get("KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD"))
            self._allow = _allow_list(env.get("KAYGRAPH_PLUGINS"))
            loaded = {key: record for key, record in self._records.items() if record.loaded}
            self._records, self._failed = dict(loaded), {}
            if self._autoload:
                self._discover_entry_points()
                self._discover_packages()
            self._discovered = True
            return self.list_plugins()

    def _allowed(self, name: str) -> bool:
        allow = self._allow
        if allow is None:
            return True
        short = name[len(self.prefix):] if name.startswith(self.prefix) else name
        return name in allow or short in allow or self.prefix + short in allow

    def _discover_entry_points(self) -> None:
        for entry_point in self._entry_points():
            if self._allowed(entry_point.name) and entry_point.name not in self._records:
                self._add_entry_point(entry_point)

    def _entry_points(self) -> list[Any]:
        import importlib.metadata as metadata

        seen: set[str] = set()
        unique = []
        for entry_point in metadata.entry_points(group=self.group):
            if entry_point.name in seen:
                _log().warning(
                    "Two installed distributions declare the KayGraph plugin %r; using the first",
                    entry_point.name,
                )
                continue
            seen.add(entry_point.name)
            unique.append(entry_point)
        return unique

    def _add_entry_point(self, entry_point: Any) -> _Plugin | None:
        name = entry_point.name
        dist = getattr(entry_point, "dist", None)
        origin = f"entry point {name} = {entry_point.value}"
        if dist is not None:
            origin += f" ({dist.metadata['Name']} {dist.version})"
        try:
            target = entry_point.load()
            provider, raw = _describe_target(target, entry_point.module, name)
            info = PluginInfo.from_value(raw, plugin=name)
        except _PLUGIN_FAILURES as exc:
            self._skip(name, origin, exc)
            return None
        return self._add(_Plugin(name, info, origin, provider))

    def _discover_packages(self) -> None:
        for module_name, location in self._scan_packages():
            if module_name not in self._records and self._allowed(module_name):
                self._add_package(module_name, location)

    def _scan_packages(self) -> list[tuple[str, str]]:
        """``kaygraph_*`` packages on the path, found by listing directories rather than importing
        anything, so the cost barely grows with the number of installed packages."""
        found: dict[str, str] = {}
        for entry in self._path if self._path is not None else list(sys.path):
            directory = entry or os.getcwd()
            try:
                with os.scandir(directory) as entries:
                    candidates = [item for item in entries if item.name.startswith(self.prefix)]
            except (OSError, TypeError):  # zip files, missing directories, non-str entries
                continue
            for item in candidates:
                name = item.name
                is_package = item.is_dir() and os.path.isfile(os.path.join(item.path, "__init__.py"))
                if is_package and name.isidentifier() and name not in found:
                    found[name] = item.path
        return list(found.items())

    def _add_package(self, module_name: str, location: str) -> _Plugin | None:
        origin = f"package {location}"
        try:
            module = importlib.import_module(module_name)
            plugin_info = getattr(module, "plugin_info", None)
            if not callable(plugin_info):
                _log().debug("%s has no plugin_info(); not a KayGraph plugin", module_name)
                return None
            info = PluginInfo.from_value(plugin_info(), plugin=module_name)
        except _PLUGIN_FAILURES as exc:
            self._skip(module_name, origin, exc)
            return None
        if any(record.provider is module for record in self._records.values()):
            return None  # also declared as an entry point: already known under that name
        return self._add(_Plugin(module_name, info, origin, module))

    def _add(self, record: _Plugin) -> _Plugin:
        self._records[record.key] = record
        _log().debug("Found KayGraph plugin %r (%s)", record.key, record.origin)
        return record

    def _skip(self, name: str, origin: str, exc: BaseException) -> None:
        if isinstance(exc, SystemExit):
            detail = f"SystemExit: it called sys.exit({exc.code!r}) while being imported"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        self._failed[name] = detail
        _log().warning("Skipping KayGraph plugin %r (%s): it failed to load", name, origin, exc_info=exc)

    def _ensure_discovered(self) -> None:
        if not self._discovered:
            self.discover()

    # -- reading ------------------------------------------------------------------------------

    def list_plugins(self) -> list[PluginInfo]:
        """Every plugin found, in discovery order (entry points first)."""
        self._ensure_discovered()
        with self._lock:
            return [record.info for record in self._records.values()]

    @property
    def plugins(self) -> dict[str, PluginInfo]:
        """Plugins found, by the name :meth:`load` takes."""
        self._ensure_discovered()
        with self._lock:
            return {key: record.info for key, record in self._records.items()}

    @property
    def loaded(self) -> dict[str, Any]:
        """Loaded plugins' modules (or objects), by name."""
        with self._lock:
            return {key: record.provider for key, record in self._records.items() if record.loaded}

    @property
    def failed(self) -> dict[str, str]:
        """Plugins that were found but skipped, with the error that made them fail."""
        self._ensure_discovered()
        with self._lock:
            return dict(self._failed)

    @property
    def autoload(self) -> bool:
        """False when ``KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD`` turned discovery off."""
        self._ensure_discovered()
        return self._autoload

    @property
    def allow_list(self) -> frozenset[str] | None:
        """The names ``KAYGRAPH_PLUGINS`` allows, or None when it is unset."""
        self._ensure_discovered()
        return self._allow

    def origin(self, name: str) -> str:
        """Where plugin ``name`` was found (entry point or package path)."""
        return self._record(name).origin

    def get_plugin_info(self, name: str) -> PluginInfo | None:
        self._ensure_discovered()
        with self._lock:
            key = self._resolve(name)
            return self._records[key].info if key is not None else None

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            key = self._resolve(name)
            return key is not None and self._records[key].loaded

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get_plugin_info(name) is not None

    def _resolve(self, name: str) -> str | None:
        """The registry key for ``name``: exact, with or without the ``kaygraph_`` prefix, or the
        plugin's own ``info.name`` when that is unambiguous."""
        records = self._records
        if name in records:
            return name
        short = name[len(self.prefix):] if name.startswith(self.prefix) else None
        for candidate in (self.prefix + name, short):
            if candidate and candidate in records:
                return candidate
        by_info = [key for key, record in records.items() if record.info.name == name]
        return by_info[0] if len(by_info) == 1 else None

    # -- loading ------------------------------------------------------------------------------

    def load(self, name: str) -> Any:
        """Load plugin ``name`` (and the plugins it requires) and return its module.

        ``initialize()`` runs once; a later call returns the same module. A plugin that was not
        discovered (autoload off, or outside ``KAYGRAPH_PLUGINS``) is looked up by name on purpose.
        """
        with self._lock:
            return self._load(name, ())

    def _load(self, name: str, chain: tuple[str, ...]) -> Any:
        record = self._record(name)
        if record.loaded:
            return record.provider
        if record.key in chain:
            cycle = " -> ".join((*chain, record.key))
            raise PluginError(f"Plugins require each other in a cycle: {cycle}", plugin=record.key)
        for required in record.info.requires:
            if required == "kaygraph":
                continue
            if self._resolve(required) is None and self._find_explicit(required) is None:
                raise PluginError(
                    f"Plugin {record.key!r} requires plugin {required!r}, which is not installed; "
                    f"install it or remove it from {record.key}'s requires",
                    plugin=record.key,
                )
            self._load(required, (*chain, record.key))
        initialize = getattr(record.provider, "initialize", None)
        if callable(initialize):
            try:
                initialize()
            except _PLUGIN_FAILURES as exc:
                raise PluginError(
                    f"Plugin {record.key!r} ({record.origin}) failed to initialize: "
                    f"{type(exc).__name__}: {exc}",
                    plugin=record.key,
                ) from exc
        record.loaded = True
        _log().info("Loaded KayGraph plugin %r %s", record.key, record.info.version)
        return record.provider

    def _record(self, name: str) -> _Plugin:
        self._ensure_discovered()
        with self._lock:
            key = self._resolve(name)
            if key is not None:
                return self._records[key]
            self._raise_if_failed(name)
            record = self._find_explicit(name)
            if record is not None:
                return record
            self._raise_if_failed(name)  # the explicit look-up found it, and it failed
            raise UnknownPluginError(self._unknown_message(name), plugin=name)

    def _raise_if_failed(self, name: str) -> None:
        """Raise the recorded failure of ``name``, under any spelling (with or without the prefix),
        so a broken plugin is never imported (run) a second time."""
        short = name[len(self.prefix):] if name.startswith(self.prefix) else None
        for candidate in (name, self.prefix + name, short):
            if candidate and candidate in self._failed:
                raise PluginError(
                    f"Plugin {candidate!r} was found but failed to load ({self._failed[candidate]}); "
                    "fix or uninstall it",
                    plugin=candidate,
                )

    def _find_explicit(self, name: str) -> _Plugin | None:
        """Look up one named plugin without general discovery (autoload off or not allow-listed)."""
        for entry_point in self._entry_points():
            if entry_point.name == name:
                return self._add_entry_point(entry_point)
        module_name = name if name.startswith(self.prefix) else self.prefix + name
        for candidate, location in self._scan_packages():
            if candidate == module_name:
                return self._add_package(candidate, location)
        return None

    def _unknown_message(self, name: str) -> str:
        import difflib

        known = list(self._records)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        message = f"No KayGraph plugin named {name!r}."
        if close:
            message += f" Did you mean {close[0]!r}?"
        message += f" Found: {', '.join(known)}." if known else " No plugins are installed."
        if self._allow is not None:
            allowed = ", ".join(sorted(self._allow)) or "nothing (it is set but names no plugin)"
            message += f" KAYGRAPH_PLUGINS limits discovery to {allowed}."
        return message + (
            f" A plugin is a '{self.prefix}<name>' package with plugin_info() or an entry point in "
            f"the group {self.group!r}."
        )


def _allow_list(value: str | None) -> frozenset[str] | None:
    """The names ``KAYGRAPH_PLUGINS`` allows; None when it is unset (everything allowed).

    Set but naming nothing (``""``, ``","``) allows nothing, with a warning: an allow-list that
    came out empty must not silently turn into "allow everything".
    """
    if value is None:
        return None
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    if not names:
        import warnings

        warnings.warn(
            f"KAYGRAPH_PLUGINS is set to {value!r}, which names no plugin, so no plugin is "
            "discovered. List the plugins to allow (KAYGRAPH_PLUGINS=a,b), or unset it to allow all.",
            UserWarning,
            stacklevel=4,
        )
    return names


def _describe_target(target: Any, module_name: str, plugin: str) -> tuple[Any, Any]:
    """From what an entry point loaded, find the object that provides ``initialize()`` and the raw
    ``plugin_info`` value."""
    plugin_info = getattr(target, "plugin_info", None)
    if callable(plugin_info):
        return target, plugin_info()
    provider: Any = sys.modules.get(module_name) or target
    if isinstance(target, (PluginInfo, Mapping)):
        return provider, target
    if callable(target):
        owner = sys.modules.get(getattr(target, "__module__", "") or "")
        return (owner if isinstance(owner, ModuleType) else provider), target()
    raise PluginError(
        f"Entry point {plugin!r} names {target!r}; it must name a module with plugin_info(), a "
        "plugin_info function or a PluginInfo",
        plugin=plugin,
    )


#: The process-wide plugin registry; nothing is discovered until it is first used.
registry = PluginRegistry()


def discover_plugins(*, refresh: bool = False) -> list[PluginInfo]:
    """The plugins of the global registry (discovered on first call; ``refresh=True`` looks again)."""
    return registry.discover(refresh=refresh)


def load_plugin(name: str) -> Any:
    """Load plugin ``name`` from the global registry and return its module."""
    return registry.load(name)


__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginRegistry",
    "discover_plugins",
    "load_plugin",
    "registry",
]
