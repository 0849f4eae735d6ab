"""The extension lifecycle: an :class:`Extension` is registered, initialized once on first use, and
shut down with the others at the end.

An extension package registers its instance when it is imported::

    from kaygraph.ext.base import Extension, register_extension

    class ObservabilityExtension(Extension):
        name = "observability"          # a class attribute or a property
        version = "1.0.0"

        def initialize(self) -> None: ...   # start exporters, servers
        def shutdown(self) -> None: ...     # flush and stop them
        def describe(self) -> dict[str, str]:
            return {"tracing": "on", "metrics": "http://127.0.0.1:9090/metrics"}

    register_extension(ObservabilityExtension())

``get_extension("observability")`` then imports the package if needed, initializes the extension
(once, even when threads race) and returns it; ``kaygraph info`` shows its :meth:`~Extension.describe`
lines without initializing it.

A package whose extension is only functions (KayGraph's own) says so in one call::

    register_extension(PackageExtension("scheduler", __version__, describe=_describe))
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kaygraph.core.exceptions import ExtensionError, UnknownExtensionError

if TYPE_CHECKING:
    import logging


def _logger(name: str) -> logging.Logger:
    import logging

    return logging.getLogger(name)


def _add_note(exc: BaseException, note: str) -> None:
    if hasattr(exc, "add_note"):  # Python 3.11+
        exc.add_note(note)


class Extension(ABC):
    """Base class of every KayGraph extension: a name, a version and a start/stop lifecycle.

    ``name`` and ``version`` may be plain class attributes or properties. Subclasses implement
    :meth:`initialize`; :meth:`shutdown` and :meth:`describe` are optional. ``__init__`` need not
    be called by subclasses that define their own.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: dict[str, Any] = dict(config or {})

    @property
    @abstractmethod
    def name(self) -> str:
        """The extension's name, as in ``kaygraph.ext.<name>`` and ``kaygraph[<name>]``."""

    @property
    @abstractmethod
    def version(self) -> str:
        """The extension's version."""

    @abstractmethod
    def initialize(self) -> None:
        """Acquire resources (connections, servers, exporters); called once, on first use."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release what :meth:`initialize` acquired; called by :meth:`ExtensionRegistry.shutdown_all`."""

    def describe(self) -> dict[str, str]:
        """Status lines for ``kaygraph info`` (e.g. ``{"metrics": "http://127.0.0.1:9090/metrics"}``).

        Must be cheap and side-effect free: it is called on extensions that are not initialized.
        """
        return {}

    @property
    def logger(self) -> logging.Logger:
        """The logger ``kaygraph.ext.<name>``."""
        return _logger(f"kaygraph.ext.{self.name}")

    @property
    def is_initialized(self) -> bool:
        return bool(self.__dict__.get("_kg_initialized", False))

    def _lock(self) -> threading.RLock:
        # dict.setdefault is atomic, so racing threads agree on one lock even without __init__.
        lock: threading.RLock = self.__dict__.setdefault("_kg_lock", threading.RLock())
        return lock

    def ensure_initialized(self) -> bool:
        """Run :meth:`initialize` unless it already succeeded; True when this call ran it.

        A failing ``initialize`` leaves the extension uninitialized (the next call retries) and
        propagates its own exception, with a note naming the extension.
        """
        if self.is_initialized:
            return False
        with self._lock():
            if self.is_initialized:
                return False
            try:
                self.initialize()
            except BaseException as exc:
                _add_note(exc, f"while initializing the KayGraph extension {self.name!r}")
                raise
            self.__dict__["_kg_initialized"] = True
            return True

    def _mark_shut_down(self) -> None:
        self.__dict__["_kg_initialized"] = False

    def __repr__(self) -> str:
        state = "initialized" if self.is_initialized else "not initialized"
        return f"<{type(self).__name__} {self.name!r} {self.version} ({state})>"


class ExtensionRegistry:
    """Extensions by name: registration, initialization on first :meth:`get`, and shutdown in
    reverse order of initialization.

    With ``shutdown_at_exit`` (the global registry's setting) the first initialization also
    registers :meth:`shutdown_all` with :mod:`atexit`, so servers and exporters that were started
    are stopped and flushed when the interpreter exits; failures there are logged.

    The global registry is the one registry of the process: the catalogue in :mod:`kaygraph.ext`
    (what ``kaygraph info`` lists) is its view of the built-in extensions, and a third-party
    extension registered here joins that catalogue (``publish=True``).
    """

    def __init__(self, *, shutdown_at_exit: bool = False, publish: bool = False) -> None:
        self._publish = publish
        self._extensions: dict[str, Extension] = {}
        self._initialized_order: list[str] = []
        self._lock = threading.RLock()
        self._shutdown_at_exit = shutdown_at_exit
        self._exit_hook_installed = False

    def register(self, extension: Extension, *, replace: bool = False) -> Extension:
        """Add ``extension`` under its name and return it.

        Registering the same name again replaces the old instance if it was never initialized
        (a re-imported module); replacing an initialized one needs ``replace=True`` and shuts it
        down first, so its resources are not leaked.
        """
        if not isinstance(extension, Extension):
            raise ExtensionError(
                f"register() needs an Extension instance, got {extension!r} ({type(extension).__name__}); "
                "subclass kaygraph.ext.base.Extension"
            )
        name = extension.name
        if not isinstance(name, str) or not name:
            raise ExtensionError(f"{type(extension).__name__}.name must be a non-empty str, got {name!r}")
        with self._lock:
            old = self._extensions.get(name)
            if old is not None and old is not extension and old.is_initialized:
                if not replace:
                    raise ExtensionError(
                        f"An initialized extension named {name!r} ({type(old).__name__}) is already "
                        "registered; shut it down first or pass replace=True"
                    )
                old.shutdown()
                old._mark_shut_down()
                self._forget_order(name)
            self._extensions[name] = extension
        if self._publish:
            from kaygraph import ext

            doc = (type(extension).__doc__ or "").strip()
            ext.registered(name, doc.splitlines()[0] if doc else f"third-party extension {name!r}")
        return extension

    def unregister(self, name: str) -> Extension:
        """Remove and return the extension ``name`` (not shut down: the caller owns it now)."""
        with self._lock:
            extension = self._lookup(name)
            del self._extensions[name]
            self._forget_order(name)
        if self._publish:
            from kaygraph import ext

            ext.unregistered(name)
        return extension

    def _forget_order(self, name: str) -> None:
        if name in self._initialized_order:
            self._initialized_order.remove(name)

    def _lookup(self, name: str) -> Extension:
        extension = self._extensions.get(name)
        if extension is None:
            import difflib

            close = difflib.get_close_matches(name, self._extensions, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(self._extensions)) or "none"
            raise UnknownExtensionError(
                f"No extension named {name!r} is registered.{hint} Registered: {known}.", name=name
            )
        return extension

    def peek(self, name: str) -> Extension | None:
        """The registered extension ``name`` or None; never imports or initializes anything."""
        with self._lock:
            return self._extensions.get(name)

    def get(self, name: str) -> Extension | None:
        """The extension ``name``, initialized (once); None when no extension has that name.

        A built-in extension that is not registered yet is imported first (its package registers
        it); if it is not installed, :class:`~kaygraph.core.exceptions.MissingExtraError` says how
        to install it. :meth:`require` is the same but raises for an unknown name.
        """
        with self._lock:
            known = name in self._extensions
        if not known:
            from kaygraph import ext

            if name not in ext.EXTENSIONS:
                return None
        return self.require(name)

    def require(self, name: str) -> Extension:
        """Like :meth:`get`, but an unknown name raises
        :class:`~kaygraph.core.exceptions.UnknownExtensionError` with a suggestion."""
        with self._lock:
            extension = self._extensions.get(name)
        if extension is None:
            from kaygraph import ext

            if name in ext.EXTENSIONS:
                ext.require(name)
                with self._lock:
                    extension = self._extensions.get(name)
                if extension is None:
                    raise ExtensionError(
                        f"kaygraph.ext.{name} imported but registered no Extension; it should call "
                        "kaygraph.ext.base.register_extension() when imported"
                    )
            else:
                with self._lock:
                    extension = self._lookup(name)
        if extension.ensure_initialized():
            with self._lock:
                if name not in self._initialized_order:
                    self._initialized_order.append(name)
                if self._shutdown_at_exit and not self._exit_hook_installed:
                    import atexit

                    atexit.register(self._shutdown_quietly)
                    self._exit_hook_installed = True
        return extension

    def _shutdown_quietly(self) -> None:
        try:
            self.shutdown_all()
        except ExtensionError:
            pass  # each failure was logged with its traceback; nobody is left to catch it

    def list(self) -> dict[str, Extension]:
        """A copy of the registered extensions by name (none are initialized by this)."""
        with self._lock:
            return dict(self._extensions)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._extensions

    def shutdown_all(self) -> None:
        """Shut down every initialized extension, most recently initialized first.

        Every one is shut down even when another raises. Each failure is logged with its
        traceback; afterwards one :class:`ExtensionError` names them all (chained to the first). A
        ``KeyboardInterrupt`` or ``SystemExit`` is re-raised once the others are done.
        """
        with self._lock:
            ordered = list(reversed(self._initialized_order))
            ordered += [name for name in self._extensions if name not in ordered]
            targets = [self._extensions[name] for name in ordered if name in self._extensions]
            self._initialized_order.clear()
        failures: list[tuple[str, Exception]] = []
        interrupt: BaseException | None = None
        for extension in targets:
            if not extension.is_initialized:
                continue
            try:
                extension.shutdown()
            except Exception as exc:
                _logger("kaygraph.ext").error(
                    "Extension %r failed to shut down", extension.name, exc_info=exc
                )
                failures.append((extension.name, exc))
            except BaseException as exc:
                interrupt = interrupt or exc
            finally:
                extension._mark_shut_down()
        if interrupt is not None:
            raise interrupt
        if failures:
            listed = "; ".join(f"{name} ({type(exc).__name__}: {exc})" for name, exc in failures)
            raise ExtensionError(
                f"{len(failures)} extension(s) failed to shut down: {listed}. The others were shut "
                "down; see the log for tracebacks"
            ) from failures[0][1]


#: The process-wide registry the built-in extensions register into; shuts them down at exit.
registry = ExtensionRegistry(shutdown_at_exit=True, publish=True)


def get_extension(name: str) -> Extension | None:
    """The extension ``name`` from the global registry, initialized once; None for an unknown name
    (see :meth:`ExtensionRegistry.get`; ``registry.require(name)`` raises instead)."""
    return registry.get(name)


def register_extension(extension: Extension, *, replace: bool = False) -> Extension:
    """Register ``extension`` in the global registry and return it."""
    return registry.register(extension, replace=replace)


class PackageExtension(Extension):
    """The extension of package ``kaygraph.ext.<name>``, made of its functions: ``describe`` gives
    ``kaygraph info`` its lines (cheap, no side effects); ``initialize`` / ``shutdown``, if any,
    start and stop what it runs for the whole process."""

    def __init__(
        self,
        name: str,
        version: str,
        *,
        describe: Callable[[], dict[str, str]],
        initialize: Callable[[], object] | None = None,
        shutdown: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self._name, self._version = name, version
        self._describe, self._initialize, self._shutdown = describe, initialize, shutdown

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    def initialize(self) -> None:
        """The package's ``initialize``; none means its work starts on first use (stores, clusters)."""
        if self._initialize is not None:
            self._initialize()

    def shutdown(self) -> None:
        if self._shutdown is not None:
            self._shutdown()

    def describe(self) -> dict[str, str]:
        return self._describe()


__all__ = [
    "Extension",
    "ExtensionRegistry",
    "PackageExtension",
    "get_extension",
    "register_extension",
    "registry",
]
