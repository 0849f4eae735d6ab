"""KayGraph extensions: optional production features, each installed with its own pip extra.

- ``persistence``: durable, resumable runs (SQLite, Redis, PostgreSQL)
- ``observability``: OpenTelemetry traces and Prometheus metrics
- ``scheduler``: cron and interval runs of graphs, exactly once, on several replicas
- ``ui``: web dashboard and HTTP API for runs, live (``kaygraph ui``)
- ``distributed``: batch items, remote nodes and many runs on Dask, Ray or local processes

Nothing is imported until touched: ``kaygraph.ext.persistence`` loads that package alone. An
extension that is not installed raises :class:`~kaygraph.core.exceptions.MissingExtraError` (an
``ImportError``) whose message is the ``pip install`` line that fixes it, whether it was reached as
an attribute, with ``from kaygraph.ext import scheduler`` or with ``import kaygraph.ext.scheduler``.

Each extension's state is found, never hard-coded, so it stays true as extensions ship:

- ``planned``: no package for it in this KayGraph (``kaygraph/ext/<name>/__init__.py`` is absent).
  No ``pip install`` brings it, so none is suggested.
- ``installed``: the package imports and every distribution its extra lists is installed.
- ``partial``: the package imports but some of its extra's distributions are missing; the parts
  that need them raise :class:`MissingExtraError` when used (SQLite durable runs work without
  redis-py and psycopg).
- ``missing`` / ``broken``: the package is there but cannot import (a driver it needs at import
  time is absent, or it fails for another reason).

:func:`status` answers that for ``kaygraph info`` and :func:`kaygraph.list_extensions` (which
lists ``installed`` extensions only).
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any, NamedTuple

from kaygraph.core.exceptions import MissingExtraError, UnknownExtensionError

#: Every extension KayGraph knows, with the line ``kaygraph info`` shows for it.
EXTENSIONS: dict[str, str] = {
    "persistence": "durable, resumable runs (SQLite, Redis, PostgreSQL)",
    "observability": "OpenTelemetry traces, Prometheus metrics, JSON logs",
    "scheduler": "cron and interval runs, exactly once, on several replicas",
    "ui": "web dashboard and HTTP API",
    "distributed": "batch items, remote nodes and many runs on Dask, Ray or local processes",
}


_status_lock = threading.Lock()
_statuses: dict[str, ExtensionStatus] = {}  # filled by status(); defined before it for registered()

#: Third-party extensions in :data:`EXTENSIONS`: they joined when they registered with the one
#: registry (``kaygraph.ext.base.registry``), so ``kaygraph info``, :func:`status` and
#: :func:`check_name` see every extension the registry has. The rest are KayGraph's own.
THIRD_PARTY: set[str] = set()


def registered(name: str, description: str) -> None:
    """Called by the global registry when it registers an extension ``name``."""
    with _status_lock:
        if name in EXTENSIONS and name not in THIRD_PARTY:
            return  # one of KayGraph's own: its status is probed
        THIRD_PARTY.add(name)
        EXTENSIONS[name] = description
        _statuses[name] = ExtensionStatus(name, description, True, "")


def unregistered(name: str) -> None:
    """Called by the global registry when it unregisters extension ``name``."""
    with _status_lock:
        if name in THIRD_PARTY:
            THIRD_PARTY.discard(name)
            EXTENSIONS.pop(name, None)
            _statuses.pop(name, None)


#: The states :func:`status` reports (see the module docstring).
STATES = ("installed", "partial", "missing", "broken", "planned")


class ExtensionStatus(NamedTuple):
    """Whether one extension is usable here and, if not, why and how to fix it."""

    name: str
    description: str
    installed: bool  # True only in state "installed"
    reason: str  # empty when installed; otherwise a sentence: what is missing and what to do
    detail: str = ""  # the same, short, for the `kaygraph info` table
    state: str = "installed"  # one of STATES

    @property
    def usable(self) -> bool:
        """The package imports: fully installed, or partly (the parts that need more say so)."""
        return self.state in ("installed", "partial")


def check_name(name: str) -> None:
    """Raise :class:`~kaygraph.core.exceptions.UnknownExtensionError` (an :class:`ExtensionError`,
    ``LookupError`` and ``ImportError``) unless ``name`` is one of :data:`EXTENSIONS`."""
    if name in EXTENSIONS:
        return
    import difflib

    close = difflib.get_close_matches(name, EXTENSIONS, n=1)
    suggestion = f"Did you mean {close[0]!r}? " if close else ""
    raise UnknownExtensionError(
        f"There is no KayGraph extension named {name!r}. {suggestion}"
        f"Known extensions: {', '.join(EXTENSIONS)}.",
        name=f"{__name__}.{name}",
    )


def _not_installed_message(name: str) -> str:
    from kaygraph.core.exceptions import install_hint

    if package_directory(name) is None:  # planned: this KayGraph has no package for it
        return _planned_message(name)
    return f"The KayGraph extension {name!r} is not installed. Install it with: {install_hint(name)}"


def _planned_message(name: str) -> str:
    """Why a planned extension cannot be used; no pip line, since none would bring it."""
    from kaygraph.core import __version__

    return (
        f"The KayGraph extension {name!r} is planned but not shipped in KayGraph {__version__}: "
        f"no pip install brings it yet (the 'kaygraph[{name}]' extra installs nothing). "
        "`kaygraph info` lists what this version ships."
    )


def _import_root(dist: Any) -> str | None:
    """One package a distribution installs (its shortest regular package), to try importing it."""
    packages = sorted(
        {
            ".".join(file.parts[:-1])
            for file in dist.files or ()
            if file.name == "__init__.py" and not any(part.endswith(".dist-info") for part in file.parts)
        },
        key=lambda module: (module.count("."), module),
    )
    return next((module for module in packages if module.replace(".", "").isidentifier()), None)


def _missing_distributions(extra: str) -> list[str]:
    """Requirements of ``kaygraph[extra]`` that are not installed, or installed but fail to import.

    Read from KayGraph's own metadata, so ``pyproject.toml`` stays the one list of what an extra
    needs. Running from a source tree that is not installed gives no metadata: then the import
    check of the extension package alone decides.
    """
    import importlib.metadata as metadata
    import re

    try:
        requirements = metadata.requires("kaygraph") or []
    except metadata.PackageNotFoundError:
        return []
    marker = re.compile(rf"""extra\s*==\s*['"]{re.escape(extra)}['"]""")
    missing = []
    for requirement in requirements:
        spec, _, condition = requirement.partition(";")
        name_match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if not marker.search(condition) or name_match is None or name_match.group(1) == "kaygraph":
            continue
        try:
            dist = metadata.distribution(name_match.group(1))
        except metadata.PackageNotFoundError:
            missing.append(spec.strip())
            continue
        root = _import_root(dist)
        try:
            if root is not None:
                importlib.import_module(root)
        except Exception as exc:  # installed but broken counts as missing, with the reason
            missing.append(f"{spec.strip()} (installed, but importing {root} fails: {exc})")
    return missing


def package_directory(name: str) -> str | None:
    """The directory of extension ``name`` if it is a real package (has ``__init__.py``), else None.

    Found without importing it; an empty or stale directory (a namespace package) does not count.
    """
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(f"{__name__}.{name}", __path__)
    if spec is None or spec.origin in (None, "namespace") or not spec.has_location:
        return None
    locations = list(spec.submodule_search_locations or [])
    return locations[0] if locations else None




def status(name: str, *, refresh: bool = False) -> ExtensionStatus:
    """Find out (once, then cached) whether extension ``name`` is installed; imports it if so."""
    check_name(name)
    with _status_lock:
        if not refresh and name in _statuses:
            return _statuses[name]
    result = _probe(name)
    with _status_lock:
        _statuses[name] = result
    return result


def _probe(name: str) -> ExtensionStatus:
    from kaygraph.core import __version__
    from kaygraph.core.exceptions import install_hint

    description = EXTENSIONS[name]
    if name in THIRD_PARTY:  # registered by its own package, which is therefore imported
        return ExtensionStatus(name, description, True, "")
    hint = install_hint(name)
    if package_directory(name) is None:
        detail = f"not shipped in KayGraph {__version__} yet"
        return ExtensionStatus(name, description, False, _planned_message(name), detail, "planned")
    missing = ", ".join(_missing_distributions(name))
    try:
        importlib.import_module(f"{__name__}.{name}")
    except Exception as exc:  # an extension that cannot import is not installed, whatever the cause
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MissingExtraError):
            reason = f"The KayGraph extension {name!r} cannot be used: {exc}"
            return ExtensionStatus(name, description, False, reason, f"{exc}", "missing")
        reason = f"The KayGraph extension {name!r} failed to import: {error}. Reinstall it with: {hint}"
        return ExtensionStatus(name, description, False, reason, f"failed to import ({error})", "broken")
    if missing:
        reason = (
            f"The KayGraph extension {name!r} works in part: {missing} not installed (the parts "
            f"that need them say so when used). Install everything with: {hint}"
        )
        return ExtensionStatus(name, description, False, reason, f"needs {missing}: {hint}", "partial")
    return ExtensionStatus(name, description, True, "")


def statuses(*, refresh: bool = False) -> list[ExtensionStatus]:
    """The status of every known extension, in :data:`EXTENSIONS` order."""
    return [status(name, refresh=refresh) for name in EXTENSIONS]


def require(name: str) -> None:
    """Raise :class:`MissingExtraError` (saying what to do) unless extension ``name`` can be used.

    A ``partial`` extension passes: its package imports, and the parts that need a missing
    distribution raise the same error, naming it, when they are used.
    """
    result = status(name)
    if not result.usable:
        raise MissingExtraError(result.reason, extra=name, name=f"{__name__}.{name}")


class _MissingExtensionFinder:
    """Last resort on ``sys.meta_path``: turns ``import kaygraph.ext.<known name>`` of an extension
    that is not there into the install hint instead of a bare ``ModuleNotFoundError``.

    Consulted only after the normal finders found nothing, and only for the five names above. One
    consequence: ``importlib.util.find_spec("kaygraph.ext.ui")`` raises the same error instead of
    returning None; ask :func:`status` whether an extension is there.
    """

    _kaygraph_missing_extension_finder = True

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> None:
        prefix, _, name = fullname.rpartition(".")
        if prefix == __name__ and name in EXTENSIONS and name not in THIRD_PARTY:
            raise MissingExtraError(_not_installed_message(name), extra=name, name=fullname)
        return None


if not any(getattr(finder, "_kaygraph_missing_extension_finder", False) for finder in sys.meta_path):
    sys.meta_path.append(_MissingExtensionFinder())


def __getattr__(name: str) -> ModuleType:
    if name in EXTENSIONS and name not in THIRD_PARTY:
        # The import system puts the submodule into our namespace, so this runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module names plus the extensions whose package is here.

    Extensions that are not (the planned ones, or one removed from a source tree) are left out:
    ``help()``, pydoc and ``inspect.getmembers`` fetch every name ``dir()`` lists, and fetching
    those raises :class:`MissingExtraError`. Found without importing any extension.
    """
    present = {name for name in EXTENSIONS if f"{__name__}.{name}" in sys.modules or package_directory(name)}
    return sorted(set(globals()) | present)


# The extensions themselves are left out on purpose: a star import must not load them all (or fail
# on the ones that are not installed).
__all__ = [
    "EXTENSIONS",
    "STATES",
    "THIRD_PARTY",
    "ExtensionStatus",
    "check_name",
    "package_directory",
    "require",
    "status",
    "statuses",
]
