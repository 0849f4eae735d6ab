"""Import helpers: load optional modules on first use and turn a missing driver into an install hint.

Every extension guards its third-party imports with :func:`require_package`, so a user who lacks
an extra always reads the same sentence: what needs which package, and the ``pip install`` line
that fixes it.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar, cast

from kaygraph.core.exceptions import ExtensionRequiredError, MissingExtraError, install_hint

F = TypeVar("F", bound=Callable[..., Any])


def _is_missing(exc: ImportError, module: str) -> bool:
    """True when ``exc`` says ``module`` itself (or a parent package) is absent, not that it broke."""
    if not isinstance(exc, ModuleNotFoundError):
        return False
    missing = exc.name
    return missing is None or module == missing or module.startswith(missing + ".")


def require_package(module: str, extra: str, feature: str, *, package: str | None = None) -> ModuleType:
    """Import ``module`` for ``feature`` or raise :class:`MissingExtraError` with the install hint.

    ``package`` names the thing to install when it differs from the module (``psycopg[binary]``).
    A package that is installed but fails to import is reported as such, with the original error
    chained, instead of being passed off as missing.

    >>> require_package("json", "persistence", "JSON checkpoints").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        wanted = package or module
        if _is_missing(exc, module):
            message = f"{feature} needs the '{wanted}' package. Install it with: {install_hint(extra)}"
        else:
            message = (
                f"{feature} needs the '{wanted}' package, which is installed but failed to import "
                f"({type(exc).__name__}: {exc}). Reinstall it with: "
                f"{install_hint(extra).replace('pip install', 'pip install --force-reinstall', 1)}"
            )
        raise MissingExtraError(message, extra=extra, name=module) from exc


def optional_import(module: str) -> ModuleType | None:
    """Import ``module`` if it is installed, else return None.

    Only absence is forgiven: a module that is installed but raises while importing propagates its
    error, because silently falling back would hide a broken environment.

    >>> optional_import("json").__name__
    'json'
    >>> optional_import("kaygraph_surely_not_installed") is None
    True
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if _is_missing(exc, module):
            return None
        raise


class LazyLoader(ModuleType):
    """A stand-in module that imports the real one on first attribute access.

    With ``extra`` and ``feature`` a missing module raises :class:`MissingExtraError` built by
    :func:`require_package`; without them the plain ``ImportError`` propagates.

    >>> json = LazyLoader("json")
    >>> json
    <LazyLoader 'json' (not loaded)>
    >>> json.dumps([1])
    '[1]'
    """

    def __init__(self, module_name: str, *, extra: str | None = None, feature: str | None = None) -> None:
        super().__init__(module_name)
        self._kg_target = module_name
        self._kg_extra = extra
        self._kg_feature = feature
        self._kg_module: ModuleType | None = None

    def _load(self) -> ModuleType:
        module = self._kg_module
        if module is None:
            prefix, _, extension = self._kg_target.rpartition(".")
            if prefix == "kaygraph.ext" and self._kg_extra is None:
                from kaygraph import ext

                ext.check_name(extension)  # unknown: "no such extension, known: ..."
                ext.require(extension)  # known but unusable: the install hint
            if self._kg_extra is not None:
                feature = self._kg_feature or f"'{self._kg_target}'"
                module = require_package(self._kg_target, self._kg_extra, feature)
            else:
                module = importlib.import_module(self._kg_target)
            self._kg_module = module
        return module

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_kg_"):  # our own state, looked up before __init__ finished
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if self._kg_module is not None else "not loaded"
        return f"<LazyLoader {self._kg_target!r} ({state})>"


def require_extension(extension_name: str) -> Callable[[F], F]:
    """Decorator: calling the function first checks that extension ``extension_name`` is installed.

    The check runs at call time (so decorating costs nothing and never fails on a missing extra)
    and raises :class:`~kaygraph.core.exceptions.ExtensionRequiredError` with the install hint: a
    :class:`MissingExtraError` (so an ``ImportError``) and a ``RuntimeError``, as the spec raised.
    An unknown extension name fails at decoration time. The wrapper keeps the function's name,
    docstring and signature, and stays a coroutine function when the function is one.
    """
    from kaygraph import ext

    ext.check_name(extension_name)

    def decorator(func: F) -> F:
        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                _require(extension_name)
                return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _require(extension_name)
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def _require(extension_name: str) -> None:
    from kaygraph import ext

    try:
        ext.require(extension_name)
    except MissingExtraError as exc:
        raise ExtensionRequiredError(str(exc), extra=exc.extra, name=exc.name) from None


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """PEP 562 ``__getattr__`` and ``__dir__`` for ``package``: ``name`` is imported from submodule
    ``exports[name]`` on first use, so importing an extension loads none of its drivers."""

    def __getattr__(name: str) -> Any:
        submodule = exports.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__


__all__ = [
    "LazyLoader",
    "install_hint",
    "lazy_exports",
    "optional_import",
    "require_extension",
    "require_package",
]
